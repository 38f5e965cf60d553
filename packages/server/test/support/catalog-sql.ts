import pg from "pg";
import type { Catalog } from "../../src/catalog/catalog.js";
import { inTransaction } from "../../src/catalog/sql.js";

/**
 * Raw SQL on the catalog, in one transaction on a connection of the test's
 * own: tests look at (and stage) rows the way a crash would have left them,
 * while ccpd itself only goes through the catalog's table modules.
 */
export async function catalogSql<T>(catalog: Catalog, fn: (q: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(catalog.connection);
  await client.connect();
  try {
    return await inTransaction(client, () => fn(client));
  } finally {
    await client.end();
  }
}
