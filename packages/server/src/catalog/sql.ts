import type pg from "pg";

/**
 * What a table module runs its statements on: the catalog's pool, or the one
 * connection of a transaction (`Catalog.tx`). Only catalog/ sees it.
 */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** The one row a statement always returns (an INSERT … RETURNING): its absence is a bug, not an input error. */
export async function one<R extends pg.QueryResultRow>(q: Queryable, text: string, values: unknown[]): Promise<R> {
  const { rows } = await q.query<R>(text, values);
  const row = rows[0];
  if (!row) throw new Error(`catalog: expected a row from ${text.slice(0, 60)}`);
  return row;
}

/** Run `fn` between BEGIN and COMMIT on one connection; ROLLBACK when it throws. */
export async function inTransaction<T>(client: Queryable, fn: () => Promise<T>): Promise<T> {
  await client.query("BEGIN");
  try {
    const result = await fn();
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}
