import pg from "pg";
import { BackupsTable } from "./backups.js";
import { CredentialsTable } from "./credentials.js";
import { DatabasesTable } from "./databases.js";
import { EventsTable } from "./events.js";
import { OperationsTable } from "./operations.js";
import { CATALOG_MIGRATIONS } from "./schema.js";
import { SecretHashesTable } from "./secret-hashes.js";
import { inTransaction, type Queryable } from "./sql.js";

export type { BackupKind, BackupRow } from "./backups.js";
export type { DatabaseRow, DatabaseStatus, NewDatabase } from "./databases.js";
export type { EventRow } from "./events.js";
export type { OperationRow } from "./operations.js";

/** The catalog's tables, each a module of typed statements (one per table, in catalog/), all on one connection or pool. */
export class CatalogTables {
  readonly databases: DatabasesTable;
  readonly operations: OperationsTable;
  readonly backups: BackupsTable;
  readonly credentials: CredentialsTable;
  readonly events: EventsTable;
  readonly adminKeys: SecretHashesTable;
  readonly metricsTokens: SecretHashesTable;

  constructor(q: Queryable) {
    this.databases = new DatabasesTable(q);
    this.operations = new OperationsTable(q);
    this.backups = new BackupsTable(q);
    this.credentials = new CredentialsTable(q);
    this.events = new EventsTable(q);
    this.adminKeys = new SecretHashesTable(q, "ccp.api_keys");
    this.metricsTokens = new SecretHashesTable(q, "ccp.metrics_tokens");
  }
}

const MIGRATION_LOCK = 0x63637001; // "ccp" + 1: catalog schema migrations

/**
 * The control plane's state, in Postgres (embedded or external). Statements
 * live in the table modules; outside a transaction each runs on the pool.
 */
export class Catalog extends CatalogTables {
  readonly #pool: pg.Pool;
  /** How to reach the catalog (tests inspect it with their own connection). */
  readonly connection: Readonly<pg.PoolConfig>;

  constructor(config: pg.PoolConfig) {
    const pool = new pg.Pool({ max: 8, ...config });
    super(pool);
    this.#pool = pool;
    this.connection = Object.freeze({ ...config });
    // A catalog connection dropped while idle must not crash ccpd; the next query reconnects.
    this.#pool.on("error", () => undefined);
  }

  async migrate(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
      await client.query("CREATE SCHEMA IF NOT EXISTS ccp");
      await client.query("CREATE TABLE IF NOT EXISTS ccp.schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
      const { rows } = await client.query<{ v: number | null }>("SELECT max(version) AS v FROM ccp.schema_migrations");
      for (let v = (rows[0]?.v ?? 0) + 1; v <= CATALOG_MIGRATIONS.length; v++) {
        await inTransaction(client, async () => {
          await client.query(CATALOG_MIGRATIONS[v - 1] as string);
          await client.query("INSERT INTO ccp.schema_migrations (version) VALUES ($1)", [v]);
        });
      }
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  /**
   * Run `fn` in one catalog transaction: the tables it is handed all run on
   * that transaction's connection.
   */
  async tx<T>(fn: (t: CatalogTables) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    try {
      return await inTransaction(client, () => fn(new CatalogTables(client)));
    } finally {
      client.release();
    }
  }

  /** A restart of a database's server: its count and its event, together. */
  async recordRestart(id: string, detail: Record<string, unknown>): Promise<void> {
    await this.tx(async (t) => {
      await t.databases.addRestart(id);
      await t.events.record(id, "restart", detail);
    });
  }
}
