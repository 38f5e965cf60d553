import path from "node:path";
import { createClient, type Fetch } from "@ccp/client";
import { CliError, EXIT } from "../errors.js";
import { DEFAULT_MIGRATIONS_DIR } from "../options.js";
import type { Output } from "../output.js";
import { resolveExecTarget, type ExecTarget } from "../target.js";
import type { MigrationDir, SqlFile } from "./files.js";
import { plural, rollbackTargets } from "./plan.js";
import { clientError, describeSqlFailure, displayPath, loadMigrationDir, reportDirWarnings } from "./report.js";
import { MigrationRunner, SqlFileError, TrackingConflictError, type SqlFileFailure } from "./runner.js";
import type { AppliedRow } from "./tracking.js";

/** `ccp db rollback`: the work, loaded when the command runs (commands/db/rollback.ts registers it). */

export interface RollbackFlags {
  readonly dir?: string | undefined;
  readonly dbId?: string | undefined;
  readonly token?: string | undefined;
  readonly database?: string | undefined;
  readonly steps?: number | undefined;
}

export interface RollbackResult {
  /** Reverted, newest first, with the time each took in ms. */
  readonly reverted: readonly { readonly name: string; readonly durationMs: number }[];
  /** What was asked for: the last `steps` applied migrations, newest first. */
  readonly targets: readonly AppliedRow[];
  readonly failure: SqlFileFailure | undefined;
}

/**
 * `ccp db rollback`: revert the last `steps` applied migrations (by applied
 * order) with their `NNN_name.down.sql` files, each in one transaction with the
 * DELETE of its tracking row. Every down file must exist before anything is
 * reverted. Stops at the first failure and returns what was reverted.
 */
export async function rollback(
  target: ExecTarget,
  dir: MigrationDir,
  steps: number,
  options: { fetch?: Fetch; onStart?: (targets: readonly AppliedRow[]) => void; onReverted?: (name: string, durationMs: number) => void } = {},
): Promise<RollbackResult> {
  const runner = new MigrationRunner(createClient({ url: target.apiUrl, databaseId: target.databaseId, token: target.token, database: target.database, fetch: options.fetch }));
  let applied: AppliedRow[];
  try {
    applied = await runner.applied();
  } catch (err) {
    throw clientError(err, target);
  }
  const targets = rollbackTargets(applied, steps);
  const downs = new Map<string, SqlFile>();
  const missing: string[] = [];
  for (const row of targets) {
    const down = dir.downs.get(row.name);
    if (down) downs.set(row.name, down);
    else missing.push(row.name.replace(/\.sql$/, ".down.sql"));
  }
  if (missing.length > 0) {
    throw new CliError("missing_down_file", `Cannot roll back: no ${missing.join(", ")} in ${displayPath(dir.dir)}; nothing was reverted.`, {
      hint: `Write ${missing.length === 1 ? "it" : "them"} (the SQL that undoes the migration), or roll back fewer steps.`,
    });
  }
  options.onStart?.(targets);
  const reverted: { name: string; durationMs: number }[] = [];
  for (const row of targets) {
    try {
      const durationMs = await runner.revert(row, downs.get(row.name) as SqlFile);
      reverted.push({ name: row.name, durationMs });
      options.onReverted?.(row.name, durationMs);
    } catch (err) {
      if (err instanceof SqlFileError) return { reverted, targets, failure: err.failure };
      if (err instanceof TrackingConflictError) {
        throw new CliError("conflict", `${err.message} Stopped after reverting ${plural(reverted.length, "migration")}.`, {
          hint: "Check with `ccp db migrate --status` and run `ccp db rollback` again if needed.",
          exitCode: EXIT.conflict,
        });
      }
      throw clientError(err, target, row.name);
    }
  }
  return { reverted, targets, failure: undefined };
}

/** The `ccp db rollback` command. */
export async function runRollback(out: Output, flags: RollbackFlags): Promise<number> {
  const target = resolveExecTarget(flags);
  const dir = loadMigrationDir(path.resolve(flags.dir ?? DEFAULT_MIGRATIONS_DIR));
  reportDirWarnings(out, dir);
  const steps = flags.steps ?? 1;
  const r = await rollback(target, dir, steps, {
    onStart: (targets) =>
      out.progress(() => {
        if (targets.length === 0) return out.success("Nothing to roll back: no migrations are applied");
        const short = targets.length < steps ? out.style("dim", ` (only ${targets.length} ${targets.length === 1 ? "is" : "are"} applied)`) : "";
        out.line(`${out.style("cyan", "›")} Rolling back ${plural(targets.length, "migration")}...${short}`);
        out.line();
      }),
    onReverted: (name, ms) => out.progress(() => out.line(`${out.style("green", "✓")} ${name} reverted ${out.style("dim", `${ms}ms`)}`)),
  });
  const json = {
    reverted: r.reverted.map((x) => ({ name: x.name, duration_ms: x.durationMs })),
    failed: r.failure ? { name: r.failure.file.name, code: r.failure.error.code, message: r.failure.error.message, line: r.failure.location?.line ?? null } : null,
  };
  out.result(json, () => {
    if (r.failure) {
      out.line(`${out.style("red", "✗")} ${r.failure.file.name}`);
    } else if (r.targets.length > 0) {
      out.line();
      out.success(`${plural(r.reverted.length, "migration")} rolled back`);
    }
  });
  if (r.failure) {
    const before = r.reverted.length > 0 ? `; the ${plural(r.reverted.length, "migration")} before it ${r.reverted.length === 1 ? "stays" : "stay"} reverted` : "";
    throw new CliError("rollback_failed", describeSqlFailure(r.failure), {
      hint: `${r.failure.file.noTransaction ? "Its row in _ccp_migrations was put back" : "Nothing of it was committed; its migration stays applied"}${before}. Fix it and run \`ccp db rollback\` again.`,
      exitCode: EXIT.sqlError,
    });
  }
  return EXIT.ok;
}
