/** A quoted identifier: `"name"` with embedded quotes doubled. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `"schema"."table"` */
export function qualifiedName(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/**
 * A value as an SQL literal: NULL, or an untyped '…' string constant that
 * Postgres casts to the column's type (standard_conforming_strings is on since
 * 9.1, so backslashes are literal and only quotes need doubling).
 */
export function quoteLiteral(value: string | null): string {
  return value === null ? "NULL" : `'${value.replaceAll("'", "''")}'`;
}

export interface ColumnValue {
  readonly column: string;
  /** Postgres' text form of the value, null for NULL. */
  readonly value: string | null;
}

export interface RowUpdate {
  readonly schema: string;
  readonly table: string;
  /** The row's primary key, as it was read. */
  readonly key: readonly ColumnValue[];
  /** Only the columns that changed. */
  readonly changes: readonly ColumnValue[];
}

/**
 * The exact UPDATE the console shows before running it: one row, by primary key,
 * only the changed columns, RETURNING the row so the grid shows what was stored.
 */
export function updateRowSql(u: RowUpdate): string {
  if (u.key.length === 0) throw new Error(`${u.schema}.${u.table} has no primary key, so a row cannot be picked out safely; edit it in the SQL editor.`);
  if (u.changes.length === 0) throw new Error("Nothing changed.");
  const set = u.changes.map((c) => `${quoteIdent(c.column)} = ${quoteLiteral(c.value)}`).join(", ");
  const where = u.key.map((k) => (k.value === null ? `${quoteIdent(k.column)} IS NULL` : `${quoteIdent(k.column)} = ${quoteLiteral(k.value)}`)).join(" AND ");
  return `UPDATE ${qualifiedName(u.schema, u.table)} SET ${set} WHERE ${where} RETURNING *;`;
}

export type FilterOp = "=" | "<>" | "<" | ">" | "contains" | "is null" | "is not null";
export const FILTER_OPS: readonly FilterOp[] = ["=", "<>", "<", ">", "contains", "is null", "is not null"];

export interface BrowseQuery {
  readonly schema: string;
  readonly table: string;
  readonly orderBy?: string | undefined;
  readonly descending?: boolean | undefined;
  readonly filter?: { readonly column: string; readonly op: FilterOp; readonly value: string } | undefined;
  readonly limit: number;
  readonly offset: number;
}

/** A page of rows: the value of a filter is a parameter ($1), never spliced into the text. */
export function browseSql(q: BrowseQuery): { sql: string; params: string[] } {
  const params: string[] = [];
  let sql = `SELECT * FROM ${qualifiedName(q.schema, q.table)}`;
  if (q.filter) {
    const col = quoteIdent(q.filter.column);
    if (q.filter.op === "is null") sql += ` WHERE ${col} IS NULL`;
    else if (q.filter.op === "is not null") sql += ` WHERE ${col} IS NOT NULL`;
    else if (q.filter.op === "contains") {
      params.push(`%${q.filter.value.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
      sql += ` WHERE ${col}::text ILIKE $1`;
    } else {
      params.push(q.filter.value);
      sql += ` WHERE ${col} ${q.filter.op} $1`;
    }
  }
  if (q.orderBy) sql += ` ORDER BY ${quoteIdent(q.orderBy)} ${q.descending ? "DESC" : "ASC"} NULLS LAST`;
  sql += ` LIMIT ${Math.max(0, Math.floor(q.limit))} OFFSET ${Math.max(0, Math.floor(q.offset))}`;
  return { sql, params };
}
