import { DatabaseError } from "pg-protocol";
import { CcpError } from "../errors.js";
import { mapperFor, mapRow, type JsonValue } from "./json-types.js";
import type { ColumnDescription, RowSink, Session } from "./session.js";

export interface Field {
  readonly name: string;
  readonly type_oid: number;
}

export interface OutputOptions {
  /** Keep values as Postgres text (null for NULL), for clients that parse types themselves (Neon's driver). */
  readonly rawText?: boolean;
}

/** One statement's outcome, in the gateway's JSON shapes. */
export interface StatementResult {
  readonly command: string;
  readonly rowCount: number | null;
  readonly fields: Field[];
  /** The full column descriptions, for protocols that pass them through (gateway/neon.ts). */
  readonly columns: ColumnDescription[];
  /** Rows as arrays in field order (objects are made at the edge, per endpoint). */
  readonly rows: JsonValue[][];
  /** True when the statement described rows (SELECT, RETURNING, SHOW…). */
  readonly hasRows: boolean;
}

/** Postgres error fields passed through to clients, as node-postgres names them. */
const PG_ERROR_FIELDS = ["severity", "detail", "hint", "position", "internalPosition", "internalQuery", "where", "schema", "table", "column", "dataType", "constraint"] as const;
/** Fields that are 1-based character offsets: numbers in our JSON. */
const NUMERIC_FIELDS = new Set(["position", "internalPosition"]);

/** A Postgres error as `{ error: { code: SQLSTATE, message, detail, hint, position, … } }`, HTTP 400. */
export class PostgresQueryError extends CcpError {
  readonly pg: DatabaseError;
  constructor(err: DatabaseError, extra: Record<string, unknown> = {}) {
    const details: Record<string, unknown> = {};
    for (const k of PG_ERROR_FIELDS) if (err[k] !== undefined) details[k] = NUMERIC_FIELDS.has(k) ? Number(err[k]) : err[k];
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
  output: OutputOptions = {},
  reset = false,
): Promise<StatementResult[]> {
  let mappers: ((t: string) => JsonValue)[] = [];
  let mappersFor: readonly ColumnDescription[] | undefined;
  const sink: RowSink = (row, columns) => {
    for (const v of row) budget.used += v === null ? 4 : v.length + 4;
    if (budget.used > maxBytes) throw new ResponseTooLargeError(maxBytes);
    if (output.rawText) return row;
    if (mappersFor !== columns) {
      mappersFor = columns;
      mappers = columns.map((f) => mapperFor(f.dataTypeID));
    }
    return mapRow(row, mappers);
  };
  const results = await session.run(sql, params, { reset, sink });
  return results.map((r) => ({
    // node-postgres gave null for an empty query; kept so answers do not change.
    command: r.command as string,
    rowCount: r.rowCount,
    fields: r.columns.map((f) => ({ name: f.name, type_oid: f.dataTypeID })),
    columns: r.columns,
    rows: r.rows as JsonValue[][],
    hasRows: r.columns.length > 0,
  }));
}

/** Rows as objects keyed by field name (a later duplicate name wins, as in node-postgres). */
export function rowsAsObjects(result: StatementResult): Record<string, JsonValue>[] {
  const names = result.fields.map((f) => f.name);
  return result.rows.map((row) => {
    const o: Record<string, JsonValue> = {};
    for (let i = 0; i < names.length; i++) o[names[i] as string] = row[i] as JsonValue;
    return o;
  });
}
