import { performance } from "node:perf_hooks";
import { CcpError, ConnectionError, createClient, PostgresError, type ExecuteResult, type Fetch } from "@ccp/client";
import { START_HINT } from "./api.js";
import { CliError, EXIT } from "./errors.js";
import { positionLines } from "./format/sql-error.js";
import { PROJECT_CONFIG } from "./project-config.js";
import type { ExecTarget } from "./target.js";

export interface ExecOutcome {
  readonly result: ExecuteResult;
  /** Round trip of the request, in milliseconds. */
  readonly ms: number;
}

/**
 * Run SQL through the database's SQL-over-HTTP gateway (/execute, which
 * returns rows for SELECT and RETURNING and the rows affected for writes), as
 * `ccp db exec` and the `ccp db connect` shell do. Several `;`-separated
 * statements run as one request; the result is the last one's. Errors come
 * back as CliErrors with psql's layout and a hint.
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

