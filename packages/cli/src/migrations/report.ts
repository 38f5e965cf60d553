import path from "node:path";
import { CcpError, ConnectionError } from "@ccp/client";
import { START_HINT } from "../api.js";
import { CliError, EXIT } from "../errors.js";
import { positionLines } from "../format/sql-error.js";
import { DEFAULT_MIGRATIONS_DIR } from "../options.js";
import type { Output } from "../output.js";
import { PROJECT_CONFIG } from "../project-config.js";
import type { ExecTarget } from "../target.js";
import { MigrationDirError, readMigrationDir, type MigrationDir } from "./files.js";
import { plural, type MigrationPlan } from "./plan.js";
import type { SqlFileFailure } from "./runner.js";

/** How `db migrate`, `db migrate new` and `db rollback` report: paths, directory problems, warnings and errors. */

/** A path as the user would type it: relative to the working directory when inside it. */
export function displayPath(p: string, cwd = process.cwd()): string {
  const rel = path.relative(cwd, p);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : p;
}

/** Read the migrations directory; its problems as CLI errors. */
export function loadMigrationDir(dir: string): MigrationDir {
  try {
    return readMigrationDir(dir);
  } catch (err) {
    if (!(err instanceof MigrationDirError)) throw err;
    const shown = displayPath(dir);
    if (err.kind === "duplicate_number") {
      throw new CliError("duplicate_migration", `${err.message.replace(/\.$/, "")} in ${shown}.`, {
        hint: "Each migration needs its own number: renumber one of them (the number orders them).",
        exitCode: EXIT.usage,
      });
    }
    throw new CliError("no_migrations_dir", err.kind === "missing" ? `No migrations directory: ${shown} does not exist.` : `${shown} is not a directory.`, {
      hint: `Create ${shown}/ with 001_init.sql in it, or run \`ccp db migrate new init\`${shown === DEFAULT_MIGRATIONS_DIR ? "" : ` --dir ${shown}`}; use --dir to point elsewhere.`,
      exitCode: EXIT.usage,
    });
  }
}

/** Files in the directory that will not run, and rows without files: said on stderr, never skipped silently. */
export function reportDirWarnings(out: Output, m: MigrationDir, plan?: MigrationPlan): void {
  const warn = (text: string) => out.note(`${out.style("yellow", "!")} ${text}`);
  const shown = displayPath(m.dir);
  if (m.ignored.length > 0) {
    warn(`Ignoring ${plural(m.ignored.length, "file")} in ${shown} that ${m.ignored.length === 1 ? "is" : "are"} not NNN_name.sql or NNN_name.down.sql: ${m.ignored.join(", ")}`);
  }
  for (const d of m.orphanDowns) warn(`${d} has no matching migration file in ${shown}.`);
  if (!plan) return;
  for (const r of plan.missingFiles) warn(`${r.name} is recorded as applied but is no longer in ${shown}.`);
  for (const f of plan.outOfOrder) warn(`${f.name} is pending but numbered below a migration already applied; it runs now, after it.`);
}

/** The CLI's version of a client error that is not about a migration file's SQL. */
export function clientError(err: unknown, target: ExecTarget, during?: string): unknown {
  if (err instanceof ConnectionError) {
    const cause = (err.cause as { cause?: { code?: string } } | undefined)?.cause?.code;
    const unknownOutcome = during ? ` while applying ${during}; it may or may not have been applied` : "";
    return new CliError("unreachable", `Cannot reach ccpd at ${target.apiUrl}${cause ? ` (${cause})` : ""}${unknownOutcome}.`, {
      hint: during ? "Check with `ccp db migrate --status` once ccpd is back, then run `ccp db migrate` again." : START_HINT,
      exitCode: EXIT.unavailable,
    });
  }
  if (err instanceof CcpError) {
    const hints: Record<string, string> = {
      unauthorized: `ccpd rejected ${target.source === "project" ? `the token in ${PROJECT_CONFIG}` : "--token"} for ${target.databaseId}.`,
      not_found: "List your databases with `ccp db list`.",
      not_ready: `Retry shortly; \`ccp db info ${target.databaseId}\` shows its status.`,
    };
    const code = /^[0-9A-Z]{5}$/.test(err.code) ? "sql_error" : err.code;
    return new CliError(code, err.message, { hint: hints[err.code] ?? err.hint, ...(code === "sql_error" ? { exitCode: EXIT.sqlError } : {}) });
  }
  return err;
}

/**
 * A Postgres error in a migration or down file: the message, file:line:column,
 * the line with a caret (as psql shows it), then DETAIL, HINT and CONTEXT.
 */
export function describeSqlFailure(f: SqlFileFailure, what = "failed"): string {
  const e = f.error;
  const where = f.location ? `:${f.location.line}:${f.location.column}` : "";
  const lines = [`${f.file.name} ${what}: ${e.message}`, `at ${displayPath(f.file.path)}${where} (SQLSTATE ${e.code})`];
  if (e.position !== undefined) lines.push(...positionLines(f.file.sql, e.position));
  if (e.detail) lines.push(`DETAIL:  ${e.detail}`);
  if (e.hint) lines.push(`HINT:  ${e.hint}`);
  if (e.where) lines.push(`CONTEXT:  ${e.where}`);
  if (e.code === "25001") {
    lines.push(
      f.file.noTransaction
        ? "NOTE:  a `-- ccp:no-transaction` file must hold exactly one statement: Postgres runs several statements sent together in one transaction."
        : "NOTE:  this statement cannot run in a transaction: put it alone in its own file whose first line is `-- ccp:no-transaction`.",
    );
  }
  // Output.error prints the first line after "✗ "; indent the rest to match.
  return lines.join("\n  ");
}

