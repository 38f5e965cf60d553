import { POSTGRES_ERROR_FIELDS } from "@ccp/client";
import { DatabaseError } from "pg-protocol";
import { CcpError } from "../errors.js";
import { mapperFor, mapRow, type JsonValue } from "./json-types.js";
import type { ColumnDescription, RowSink, Session } from "./session.js";

/**
 * One statement's outcome as Postgres gave it: the column descriptions and the
 * rows as text values (null for NULL). Each endpoint renders it in its own
 * shape (routes.ts, neon.ts, api/routes/database-sql.ts).
 */
export interface StatementResult {
  readonly command: string;
  readonly rowCount: number | null;
  /** Empty unless the statement described rows (SELECT, RETURNING, SHOW…). */
  readonly columns: readonly ColumnDescription[];
  /** Rows as arrays in column order. */
  readonly rows: (string | null)[][];
}

/** Fields that are 1-based character offsets: numbers in our JSON. */
const NUMERIC_FIELDS = new Set(["position", "internalPosition"]);

/** A Postgres error as `{ error: { code: SQLSTATE, message, detail, hint, position, … } }`, HTTP 400. */
export class PostgresQueryError extends CcpError {
  readonly pg: DatabaseError;
  constructor(err: DatabaseError, extra: Record<string, unknown> = {}) {
    const details: Record<string, unknown> = {};
    for (const k of POSTGRES_ERROR_FIELDS) if (err[k] !== undefined) details[k] = NUMERIC_FIELDS.has(k) ? Number(err[k]) : err[k];
    super("invalid_request", err.message, { details: { ...details, ...extra } });
    this.pg = err;
  }
  override toJSON(): { error: Record<string, unknown> } {
    const base = super.toJSON();
    return { error: { ...base.error, code: this.pg.code } };
  }
}

export function isDatabaseError(err: unknown): err is DatabaseError {
  return err instanceof DatabaseError;
}

/** Thrown when the rows of a response would exceed the cap; the connection is then dropped. */
export class ResponseTooLargeError extends CcpError {
  constructor(limit: number) {
    super("invalid_request", `The result is larger than the gateway's response limit of ${Math.round(limit / 1024 / 1024)} MiB.`, {
      hint: "Select fewer rows or columns (LIMIT / pagination).",
      details: { reason: "response_too_large" },
    });
  }
}

/**
 * Run one SQL text (several statements allowed when there are no parameters),
 * counting row bytes as they arrive so the response cap holds before the whole
 * result is in memory. Resolves to one result per statement. `reset` writes the
 * session's reset right behind the statement (session.ts).
 */
export async function runStatement(
  session: Session,
  sql: string,
  params: readonly unknown[] | undefined,
  maxBytes: number,
  budget: { used: number },
  reset = false,
): Promise<StatementResult[]> {
  const sink: RowSink = (row) => {
    for (const v of row) budget.used += v === null ? 4 : v.length + 4;
    if (budget.used > maxBytes) throw new ResponseTooLargeError(maxBytes);
    return row;
  };
  const results = await session.run(sql, params, { reset, sink });
  return results.map((r) => ({
    // node-postgres gave null for an empty query; kept so answers do not change.
    command: r.command as string,
    rowCount: r.rowCount,
    columns: r.columns,
    rows: r.rows as (string | null)[][],
  }));
}

/** ccp's `fields`: each column's name and type OID. */
export function fieldsOf(result: StatementResult): { name: string; type_oid: number }[] {
  return result.columns.map((c) => ({ name: c.name, type_oid: c.dataTypeID }));
}

/** The rows with values mapped to JSON by column type (json-types.ts), as ccp's endpoints answer. */
export function jsonRows(result: StatementResult): JsonValue[][] {
  const mappers = result.columns.map((c) => mapperFor(c.dataTypeID));
  return result.rows.map((row) => mapRow(row, mappers));
}

/** Rows as objects keyed by column name (a later duplicate name wins, as in node-postgres). */
export function rowsAsObjects<V>(columns: readonly ColumnDescription[], rows: readonly V[][]): Record<string, V>[] {
  const names = columns.map((c) => c.name);
  return rows.map((row) => {
    const o: Record<string, V> = {};
    for (let i = 0; i < names.length; i++) o[names[i] as string] = row[i] as V;
    return o;
  });
}
