import pg from "pg";
import { CcpError } from "../errors.js";
import { mapperFor, mapRow, type JsonValue } from "./json-types.js";
import { RAW_TYPES } from "./pools.js";

export interface Field {
  readonly name: string;
  readonly type_oid: number;
}

/** A result column as Postgres describes it (RowDescription), in node-postgres' names. */
export interface ColumnDescription {
  readonly name: string;
  readonly tableID: number;
  readonly columnID: number;
  readonly dataTypeID: number;
  readonly dataTypeSize: number;
  readonly dataTypeModifier: number;
  readonly format: string;
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
  readonly pg: pg.DatabaseError;
  constructor(err: pg.DatabaseError, extra: Record<string, unknown> = {}) {
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

export function isDatabaseError(err: unknown): err is pg.DatabaseError {
  return err instanceof pg.DatabaseError;
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

type PgResultLike = { command: string; rowCount: number | null; fields: ColumnDescription[] };

/**
 * Run one SQL text (several statements allowed when there are no parameters),
 * streaming rows so the response cap holds before the whole result is in memory.
 * Resolves to one result per statement.
 */
export function runStatement(client: pg.PoolClient, sql: string, params: readonly unknown[] | undefined, maxBytes: number, budget: { used: number }, output: OutputOptions = {}): Promise<StatementResult[]> {
  return new Promise((resolve, reject) => {
    const config: pg.QueryArrayConfig = { text: sql, rowMode: "array", types: RAW_TYPES };
    if (params && params.length > 0) config.values = [...params];
    const query = new pg.Query(config);
    const rowsByResult = new Map<object, JsonValue[][]>();
    let mappers: ((t: string) => JsonValue)[] = [];
    let mappersFor: object | undefined;
    let failed: Error | undefined;
    query.on("row", (row: (string | null)[], resultBuilder?: unknown) => {
      if (failed) return;
      const result = resultBuilder as PgResultLike;
      if (mappersFor !== result) {
        mappersFor = result;
        mappers = output.rawText ? [] : result.fields.map((f) => mapperFor(f.dataTypeID));
        rowsByResult.set(result, []);
      }
      for (const v of row) budget.used += v === null ? 4 : v.length + 4;
      if (budget.used > maxBytes) {
        failed = new ResponseTooLargeError(maxBytes);
        // Stop reading: drop the connection; the server cancels the query when it sees the socket close.
        (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
        reject(failed);
        return;
      }
      (rowsByResult.get(result) as JsonValue[][]).push(output.rawText ? row : mapRow(row, mappers));
    });
    query.on("error", (err: Error) => {
      if (!failed) reject(err);
    });
    query.on("end", (res: PgResultLike | PgResultLike[]) => {
      if (failed) return;
      const list = Array.isArray(res) ? res : [res];
      resolve(
        list.map((r) => ({
          command: r.command,
          rowCount: r.rowCount,
          fields: r.fields.map((f) => ({ name: f.name, type_oid: f.dataTypeID })),
          columns: r.fields.map((f) => ({
            name: f.name,
            tableID: f.tableID,
            columnID: f.columnID,
            dataTypeID: f.dataTypeID,
            dataTypeSize: f.dataTypeSize,
            dataTypeModifier: f.dataTypeModifier,
            format: f.format,
          })),
          rows: rowsByResult.get(r) ?? [],
          hasRows: r.fields.length > 0,
        })),
      );
    });
    client.query(query);
  });
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
