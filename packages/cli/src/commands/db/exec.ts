import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { CcpError, ConnectionError, createClient, PostgresError, type ExecuteResult, type Fetch } from "@ccp/client";
import { InvalidArgumentError, Option } from "commander";
import { resolveApiTarget, START_HINT } from "../../api.js";
import { CliError, EXIT, usageError } from "../../errors.js";
import { positionLines } from "../../format/sql-error.js";
import { renderTable } from "../../format/table.js";
import { alignFor, cellText } from "../../format/values.js";
import type { Output } from "../../output.js";
import { PROJECT_CONFIG, readProjectConfig } from "../../project-config.js";

/** Where `ccp db exec` sends its SQL. */
export interface ExecTarget {
  readonly apiUrl: string;
  readonly databaseId: string;
  readonly token: string;
  /** Postgres database inside the instance (`--database`, else the project's); undefined: the instance's `default`. */
  readonly database?: string | undefined;
  /** Where the credentials came from, for hints. */
  readonly source: "flags" | "project";
}

/**
 * `--database <name>`: which Postgres database inside the instance a command
 * uses (seed 003's app_db_name). Every command that talks to a database adds
 * it; resolveExecTarget() folds it into the target, and createClient() takes
 * it as its `database` option.
 */
export const databaseOption = (): Option =>
  new Option("--database <name>", "Postgres database inside the instance (default: the project's, else default)").argParser((value: string) => {
    if (value === "" || value.length > 63) throw new InvalidArgumentError("expected a Postgres database name of 1–63 characters.");
    return value;
  });

export interface ExecOutcome {
  readonly result: ExecuteResult;
  /** Round trip of the request, in milliseconds. */
  readonly ms: number;
}

const SQL_SOURCES_HINT = 'Pass the SQL as an argument (ccp db exec "SELECT 1"), with -f FILE, or on stdin.';

/**
 * `--db-id` and `--token` together, or neither and the project's
 * .cluster/config.json; the API URL then comes from the project, else from the
 * user config (CCP_API_URL / `ccp login`).
 */
export function resolveExecTarget(
  flags: { dbId?: string | undefined; token?: string | undefined; database?: string | undefined },
  cwd = process.cwd(),
  env: NodeJS.ProcessEnv = process.env,
): ExecTarget {
  if (flags.dbId !== undefined || flags.token !== undefined) {
    if (!flags.dbId || !flags.token) {
      throw usageError(
        `--db-id and --token go together: pass ${flags.dbId ? "--token" : "--db-id"} as well.`,
        `Or pass neither to use the database in ${PROJECT_CONFIG}.`,
      );
    }
    return { apiUrl: resolveApiTarget(env).apiUrl, databaseId: flags.dbId, token: flags.token, database: flags.database, source: "flags" };
  }
  const project = readProjectConfig(cwd);
  if (!project?.databaseId || !project.token) {
    throw usageError(
      `No database for this directory: ${PROJECT_CONFIG} not found.`,
      "Create one here with `ccp db create --name my-app-db`, or pass --db-id and --token.",
    );
  }
  return {
    apiUrl: (project.apiUrl || resolveApiTarget(env).apiUrl).replace(/\/+$/, ""),
    databaseId: project.databaseId,
    token: project.token,
    database: flags.database ?? project.database,
    source: "project",
  };
}

/** The SQL: the argument, `-f FILE` (`-` for stdin), or stdin when it is not a terminal. */
export async function readSql(arg: string | undefined, options: { file?: string | undefined }, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (arg !== undefined && options.file !== undefined) throw usageError("Give the SQL either as an argument or with -f, not both.");
  let sql: string;
  if (arg !== undefined) sql = arg;
  else if (options.file !== undefined && options.file !== "-") {
    try {
      sql = readFileSync(options.file, "utf8");
    } catch (err) {
      throw usageError(`Cannot read ${options.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}).`, SQL_SOURCES_HINT);
    }
  } else if (options.file === "-" || !stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
    sql = Buffer.concat(chunks).toString("utf8");
  } else {
    throw usageError("No SQL to run.", SQL_SOURCES_HINT);
  }
  if (sql.trim() === "") throw usageError("No SQL to run: the SQL given is empty.", SQL_SOURCES_HINT);
  return sql;
}

/**
 * `ccp db exec SQL`: run it through the database's SQL-over-HTTP gateway
 * (/execute, which returns rows for SELECT and RETURNING and the rows
 * affected for writes). Several `;`-separated statements run as one request;
 * the last one's rows are shown.
 */
export async function execSql(target: ExecTarget, sql: string, options: { fetch?: Fetch } = {}): Promise<ExecOutcome> {
  const db = createClient({ url: target.apiUrl, databaseId: target.databaseId, token: target.token, database: target.database, fetch: options.fetch });
  const started = performance.now();
  try {
    const result = await db.execute(sql);
    return { result, ms: performance.now() - started };
  } catch (err) {
    throw toCliError(err, target, sql);
  }
}

function toCliError(err: unknown, target: ExecTarget, sql: string): unknown {
  if (err instanceof PostgresError) {
    return new CliError(err.code, describePostgresError(err, sql), { hint: err.hint, exitCode: EXIT.sqlError, details: { ...err.body } });
  }
  if (err instanceof ConnectionError) {
    // fetch reports "fetch failed" and keeps the reason (ECONNREFUSED, ENOTFOUND, bad port) in its cause.
    const reason = (err.cause as { cause?: { code?: string; message?: string } } | undefined)?.cause;
    const why = reason?.code ?? reason?.message;
    return new CliError("unreachable", `Cannot reach ccpd at ${target.apiUrl}${why ? ` (${why})` : ""}.`, { hint: START_HINT, exitCode: EXIT.unavailable });
  }
  if (err instanceof CcpError) {
    const from = target.source === "project" ? `the token in ${PROJECT_CONFIG}` : "--token";
    const hints: Record<string, string> = {
      unauthorized: `ccpd rejected ${from} for ${target.databaseId}; use the token \`ccp db create\` printed for this database.`,
      not_found: `List your databases with \`ccp db list\`${target.source === "flags" ? "; --db-id takes an id (db-…), not a name" : ""}.`,
      not_ready: `Retry shortly; \`ccp db info ${target.databaseId}\` shows its status.`,
    };
    return new CliError(err.code, err.message, { hint: hints[err.code] ?? err.hint });
  }
  return err;
}

/** psql's layout: the message, then LINE n with a caret under the position, then DETAIL, QUERY and CONTEXT. */
export function describePostgresError(err: PostgresError, sql: string): string {
  const lines = [err.statementIndex === undefined ? err.message : `${err.message} (statement ${err.statementIndex + 1})`];
  if (err.position !== undefined) lines.push(...positionLines(sql, err.position));
  if (err.detail) lines.push(`DETAIL:  ${err.detail}`);
  if (err.internalQuery && err.internalPosition !== undefined) lines.push(...positionLines(err.internalQuery, err.internalPosition, "QUERY"));
  else if (err.internalQuery) lines.push(`QUERY:  ${err.internalQuery}`);
  if (err.where) lines.push(`CONTEXT:  ${err.where}`);
  // Output.error prints the first line after "✗ "; indent the rest to match.
  return lines.join("\n  ");
}

/** Commands whose count is "rows affected" rather than rows returned. */
const WRITES = new Set(["INSERT", "UPDATE", "DELETE", "MERGE", "COPY"]);

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

export function printExec(out: Output, r: ExecOutcome): void {
  const { result } = r;
  if (out.json) {
    // The gateway's own JSON for /execute.
    const wire: Record<string, unknown> = { command: result.command, rows_affected: result.rowsAffected };
    if (result.rows) wire["rows"] = result.rows;
    if (result.fields) wire["fields"] = result.fields.map((f) => ({ name: f.name, type_oid: f.typeOid }));
    return out.data(wire);
  }
  const timing = out.style("dim", `${Math.round(r.ms)}ms`);
  out.line();
  if (result.rows && result.fields) {
    const fields = result.fields;
    const table = renderTable(
      fields.map((f) => ({ name: f.name, align: alignFor(f.typeOid) })),
      // Rows are objects keyed by name; a repeated column name shows the last value, as the gateway sends it.
      result.rows.map((row) => fields.map((f) => cellText(row[f.name] ?? null, f.typeOid))),
    );
    for (const line of table) out.line(line);
    out.line();
    if (WRITES.has(result.command)) {
      out.line(`${plural(result.rowsAffected, "row affected", "rows affected")} · ${timing}`);
    } else {
      out.line(`(${plural(result.rows.length, "row", "rows")})`);
      out.line();
      out.line(timing);
    }
  } else if (WRITES.has(result.command) || result.command === "SELECT") {
    out.line(`${plural(result.rowsAffected, "row affected", "rows affected")} · ${timing}`);
  } else {
    out.line(`${result.command} · ${timing}`);
  }
}
