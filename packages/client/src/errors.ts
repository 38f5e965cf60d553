/**
 * Every failure the client reports is a {@link CcpError}: a stable `code`, the
 * HTTP `status` and, where the server gave one, a `hint` saying what to do next.
 * Errors raised by Postgres itself are {@link PostgresError}s (code = SQLSTATE);
 * a request that never got an answer is a {@link ConnectionError}.
 *
 * @example
 * ```ts
 * import { CcpError, PostgresError } from "@ccp/client";
 *
 * try {
 *   await db.execute("INSERT INTO users (email) VALUES ($1)", [email]);
 * } catch (err) {
 *   if (err instanceof PostgresError && err.code === "23505") return "taken";
 *   if (err instanceof CcpError && err.code === "not_ready") await sleep((err.retryAfter ?? 1) * 1000);
 *   throw err;
 * }
 * ```
 */
export class CcpError extends Error {
  /** `unauthorized`, `not_found`, `not_ready`, `invalid_request`, … or a SQLSTATE for a {@link PostgresError}. */
  readonly code: string;
  /** HTTP status of the answer; 0 when there was none ({@link ConnectionError}). */
  readonly status: number;
  /** What to do about it, when the server said. */
  readonly hint: string | undefined;
  /** Seconds to wait before retrying, from the `Retry-After` of a 503. */
  readonly retryAfter: number | undefined;
  /** The error object of the response body as received, for fields this class does not name. */
  readonly body: Readonly<Record<string, unknown>>;

  constructor(
    code: string,
    message: string,
    options: { status?: number; hint?: string | undefined; retryAfter?: number | undefined; body?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CcpError";
    this.code = code;
    this.status = options.status ?? 0;
    this.hint = options.hint;
    this.retryAfter = options.retryAfter;
    this.body = Object.freeze({ ...options.body });
  }
}

/**
 * The fields of a Postgres error besides its code and message, as node-postgres
 * names them: what ccpd passes through in an error body and what a
 * {@link PostgresError} carries.
 */
export const POSTGRES_ERROR_FIELDS = [
  "severity",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "where",
  "schema",
  "table",
  "column",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;

/**
 * An error raised by Postgres, with every field Postgres sent (as node-postgres'
 * `DatabaseError` keeps them). `code` is the SQLSTATE, e.g. `23505` for a unique
 * violation or `42601` for a syntax error; `position` is the 1-based character
 * offset in the SQL text; `statementIndex` says which statement of a
 * {@link Client.transaction} failed.
 *
 * @example
 * ```ts
 * import { PostgresError } from "@ccp/client";
 *
 * try {
 *   await db.query("SELEC 1");
 * } catch (err) {
 *   if (err instanceof PostgresError) console.log(err.code, err.position); // "42601" 1
 * }
 * ```
 */
export class PostgresError extends CcpError {
  /** ERROR, FATAL or PANIC. */
  readonly severity: string | undefined;
  readonly detail: string | undefined;
  /** 1-based character offset of the error in the SQL text. */
  readonly position: number | undefined;
  readonly internalPosition: number | undefined;
  readonly internalQuery: string | undefined;
  /** Context in which the error occurred (e.g. the PL/pgSQL line). */
  readonly where: string | undefined;
  readonly schema: string | undefined;
  readonly table: string | undefined;
  readonly column: string | undefined;
  readonly dataType: string | undefined;
  readonly constraint: string | undefined;
  /** Where in Postgres' source the error was raised (file, line, function). */
  readonly file: string | undefined;
  readonly line: string | undefined;
  readonly routine: string | undefined;
  /** Index of the failing statement in a transaction (0-based). */
  readonly statementIndex: number | undefined;

  constructor(code: string, message: string, options: { status?: number; body?: Record<string, unknown> } = {}) {
    const body = options.body ?? {};
    super(code, message, { status: options.status ?? 400, hint: text(body["hint"]), body });
    this.name = "PostgresError";
    this.severity = text(body["severity"]);
    this.detail = text(body["detail"]);
    this.position = num(body["position"]);
    this.internalPosition = num(body["internalPosition"]);
    this.internalQuery = text(body["internalQuery"]);
    this.where = text(body["where"]);
    this.schema = text(body["schema"]);
    this.table = text(body["table"]);
    this.column = text(body["column"]);
    this.dataType = text(body["dataType"]);
    this.constraint = text(body["constraint"]);
    this.file = text(body["file"]);
    this.line = text(body["line"]);
    this.routine = text(body["routine"]);
    this.statementIndex = num(body["statement_index"]);
  }
}

/**
 * The request did not get an answer: DNS, refused or reset connection, TLS.
 * The original error is in `cause`. Nothing is known about whether the
 * statement ran, so retry only what is safe to run twice.
 *
 * @example
 * ```ts
 * import { ConnectionError } from "@ccp/client";
 *
 * try {
 *   await db.query("SELECT 1");
 * } catch (err) {
 *   if (err instanceof ConnectionError) console.error("database unreachable:", err.cause);
 * }
 * ```
 */
export class ConnectionError extends CcpError {
  constructor(url: string, cause: unknown) {
    super("connection_failed", `Cannot reach ${url}: ${describe(cause)}.`, { cause });
    this.name = "ConnectionError";
  }
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** The error a non-2xx answer stands for; ccp codes are lower-case words, so a 5-character upper-case code is a SQLSTATE. */
export function errorFromResponse(status: number, payload: unknown, retryAfterHeader: string | null): CcpError {
  const body = (isObject(payload) && isObject(payload["error"]) ? payload["error"] : {}) as Record<string, unknown>;
  const code = text(body["code"]) ?? `http_${status}`;
  const message = text(body["message"]) ?? `The server answered HTTP ${status}.`;
  if (SQLSTATE.test(code)) return new PostgresError(code, message, { status, body });
  const retryAfter = retryAfterHeader !== null && /^\d+$/.test(retryAfterHeader.trim()) ? Number(retryAfterHeader) : undefined;
  return new CcpError(code, message, { status, hint: text(body["hint"]), retryAfter, body });
}

function describe(err: unknown): string {
  // undici hides the reason (ECONNREFUSED, ENOTFOUND, …) in `cause` behind "fetch failed".
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  return text(cause?.code) ?? text(cause?.message) ?? (err instanceof Error ? err.message : String(err));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function text(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function num(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "string" && /^\d+$/.test(v)) return Number(v);
  return undefined;
}
