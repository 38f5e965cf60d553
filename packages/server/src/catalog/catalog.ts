import pg from "pg";
import { CATALOG_MIGRATIONS } from "./schema.js";

export type DatabaseStatus = "creating" | "ready" | "suspended" | "stopped" | "failed" | "destroying" | "restoring";

export interface DatabaseRow {
  readonly id: string;
  readonly name: string;
  readonly status: DatabaseStatus;
  readonly desired_state: "running" | "stopped";
  readonly runtime: string;
  readonly pg_version: string;
  readonly owner_role: string;
  readonly database_name: string;
  readonly token_hash: string;
  readonly restarts: number;
  readonly last_error: string | null;
  /** The database's own suspend timeout ("5m", "never"); null: the server's default. */
  readonly suspend_after: string | null;
  readonly last_active_at: Date | null;
  readonly last_write_at: Date | null;
  readonly created_at: Date;
  readonly updated_at: Date;
  /** Set on a branch: the database it was copied from (NULL once that one is destroyed). */
  readonly parent_id: string | null;
  /** When a branch's data was taken from its parent (the instant, for a branch at one). */
  readonly branched_at: Date | null;
  /** The parent's WAL position the branch's data ends at. */
  readonly branch_lsn: string | null;
  /** ccpd destroys the database at this time. */
  readonly expires_at: Date | null;
  /** The database's own limits by name (databases/limits.ts); absent names: the server's defaults. */
  readonly limits: Partial<Record<string, number>>;
  /** Set while ccpd holds it read-only for being over its storage quota. */
  readonly read_only_since: Date | null;
  /** The storage reading that made it read-only (bigint: a string from pg). */
  readonly storage_used_bytes: string | null;
}

export interface EventRow {
  readonly id: string;
  readonly kind: string;
  readonly detail: Record<string, unknown>;
  readonly at: Date;
}

export interface OperationRow {
  readonly id: string;
  readonly database_id: string;
  readonly kind: string;
  readonly state: "running" | "done" | "failed";
}

const MIGRATION_LOCK = 0x63637001; // "ccp" + 1: catalog schema migrations

/** The control plane's state, in Postgres (embedded or external). */
export class Catalog {
  readonly #pool: pg.Pool;

  constructor(config: pg.PoolConfig) {
    this.#pool = new pg.Pool({ max: 8, ...config });
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
        await client.query("BEGIN");
        try {
          await client.query(CATALOG_MIGRATIONS[v - 1] as string);
          await client.query("INSERT INTO ccp.schema_migrations (version) VALUES ($1)", [v]);
          await client.query("COMMIT");
        } catch (err) {
          await client.query("ROLLBACK");
          throw err;
        }
      }
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  /** Run `fn` in one catalog transaction. */
  async tx<T>(fn: (q: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  // --- admin keys ---

  async countAdminKeys(): Promise<number> {
    const { rows } = await this.#pool.query<{ n: string }>("SELECT count(*) AS n FROM ccp.api_keys");
    return Number(rows[0]?.n ?? 0);
  }

  async addAdminKey(keyHash: string): Promise<void> {
    await this.#pool.query("INSERT INTO ccp.api_keys (key_hash) VALUES ($1)", [keyHash]);
  }

  async adminKeyHashes(): Promise<string[]> {
    const { rows } = await this.#pool.query<{ key_hash: string }>("SELECT key_hash FROM ccp.api_keys");
    return rows.map((r) => r.key_hash);
  }

  // --- databases ---

  async listDatabases(): Promise<DatabaseRow[]> {
    const { rows } = await this.#pool.query<DatabaseRow>("SELECT * FROM ccp.databases ORDER BY created_at, name");
    return rows;
  }

  /**
   * A database by id or by name: the id wins, deterministically, should a row
   * ever carry another database's id as its name (names of that shape are
   * refused, but rows from before that rule may exist).
   */
  async findDatabase(ref: string): Promise<DatabaseRow | undefined> {
    if (ref.includes("\0")) return undefined; // no id or name holds a NUL, and Postgres text cannot carry one
    const { rows } = await this.#pool.query<DatabaseRow>(
      "SELECT * FROM ccp.databases WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC, created_at LIMIT 1",
      [ref],
    );
    return rows[0];
  }

  /** A database by id only: what the data plane (gateway, wire endpoint) resolves. */
  async findDatabaseById(id: string): Promise<DatabaseRow | undefined> {
    if (id.includes("\0")) return undefined;
    const { rows } = await this.#pool.query<DatabaseRow>("SELECT * FROM ccp.databases WHERE id = $1", [id]);
    return rows[0];
  }

  /** Branches of a database (branches/service.ts), oldest first. */
  async branchesOf(parentId: string): Promise<DatabaseRow[]> {
    const { rows } = await this.#pool.query<DatabaseRow>("SELECT * FROM ccp.databases WHERE parent_id = $1 ORDER BY created_at, name", [parentId]);
    return rows;
  }

  async setStatus(id: string, status: DatabaseStatus, lastError: string | null = null): Promise<void> {
    await this.#pool.query("UPDATE ccp.databases SET status = $2, last_error = $3, updated_at = now() WHERE id = $1", [id, status, lastError]);
  }

  /** Move a database from one status to another, only if it is still in the first (a wake racing a suspension). */
  async setStatusIf(id: string, from: DatabaseStatus, to: DatabaseStatus): Promise<void> {
    await this.#pool.query("UPDATE ccp.databases SET status = $3, updated_at = now() WHERE id = $1 AND status = $2", [id, from, to]);
  }

  async recordRestart(id: string, detail: Record<string, unknown>): Promise<void> {
    await this.tx(async (q) => {
      await q.query("UPDATE ccp.databases SET restarts = restarts + 1, updated_at = now() WHERE id = $1", [id]);
      await q.query("INSERT INTO ccp.instance_events (database_id, kind, detail) VALUES ($1, 'restart', $2)", [id, JSON.stringify(detail)]);
    });
  }

  async restartEvents(id: string): Promise<{ at: Date; detail: Record<string, unknown> }[]> {
    const { rows } = await this.#pool.query<{ at: Date; detail: Record<string, unknown> }>(
      "SELECT at, detail FROM ccp.instance_events WHERE database_id = $1 AND kind = 'restart' ORDER BY id",
      [id],
    );
    return rows;
  }

  // --- platform events (ccp db logs) ---

  /** Mark a database suspended, only if it is still ready (a wake racing a suspension). */
  async markSuspended(id: string, lastActive: Date, wrote: boolean): Promise<void> {
    await this.#pool.query(
      `UPDATE ccp.databases SET status = 'suspended', last_active_at = $2, last_write_at = CASE WHEN $3 THEN now() ELSE last_write_at END, updated_at = now()
        WHERE id = $1 AND status = 'ready'`,
      [id, lastActive, wrote],
    );
  }

  /** The ready databases of a runtime with their own suspend timeout (null: the server's default), for autosuspend. */
  async suspendTimeouts(runtime: string): Promise<{ id: string; suspend_after: string | null }[]> {
    const { rows } = await this.#pool.query<{ id: string; suspend_after: string | null }>(
      "SELECT id, suspend_after FROM ccp.databases WHERE status = 'ready' AND runtime = $1",
      [runtime],
    );
    return rows;
  }

  async setSuspendAfter(id: string, value: string | null): Promise<void> {
    await this.#pool.query("UPDATE ccp.databases SET suspend_after = $2, updated_at = now() WHERE id = $1", [id, value]);
  }

  /** Where a branch was taken from its parent: an instant, an LSN, or both. */
  async setLimits(id: string, limits: Record<string, number>): Promise<void> {
    await this.#pool.query("UPDATE ccp.databases SET limits = $2, updated_at = now() WHERE id = $1", [id, JSON.stringify(limits)]);
  }

  /** Over its storage quota (usedBytes set) or back under it (null). */
  async setReadOnly(id: string, usedBytes: number | null): Promise<void> {
    await this.#pool.query(
      usedBytes === null
        ? "UPDATE ccp.databases SET read_only_since = NULL, storage_used_bytes = NULL, updated_at = now() WHERE id = $1"
        : "UPDATE ccp.databases SET read_only_since = coalesce(read_only_since, now()), storage_used_bytes = $2, updated_at = now() WHERE id = $1",
      usedBytes === null ? [id] : [id, usedBytes],
    );
  }

  async setBranchOrigin(id: string, at: Date | null, lsn: string | null): Promise<void> {
    await this.#pool.query("UPDATE ccp.databases SET branched_at = $2, branch_lsn = $3::pg_lsn, updated_at = now() WHERE id = $1", [id, at, lsn || null]);
  }

  /** Databases whose expiry has passed (and that are not being created or destroyed), oldest expiry first. */
  async expiredDatabases(now: Date): Promise<string[]> {
    const { rows } = await this.#pool.query<{ id: string }>(
      "SELECT id FROM ccp.databases WHERE expires_at <= $1 AND status NOT IN ('creating', 'destroying') ORDER BY expires_at",
      [now],
    );
    return rows.map((r) => r.id);
  }

  /** Delete every backup row of a database; returns their ids (their files are the store's). */
  async deleteBackupsOf(databaseId: string): Promise<string[]> {
    const { rows } = await this.#pool.query<{ id: string }>("DELETE FROM ccp.backups WHERE database_id = $1 RETURNING id", [databaseId]);
    return rows.map((r) => r.id);
  }

  /** Record a platform event of a database; `detail` must never hold a secret. */
  async recordEvent(id: string, kind: string, detail: Record<string, unknown> = {}): Promise<void> {
    await this.#pool.query("INSERT INTO ccp.instance_events (database_id, kind, detail) VALUES ($1, $2, $3)", [id, kind, JSON.stringify(detail)]);
  }

  /** A database's events since `since`, after event id `afterId` (for following), oldest first. */
  async events(id: string, since: Date, afterId = "0", limit = 10_000): Promise<EventRow[]> {
    const { rows } = await this.#pool.query<EventRow>(
      "SELECT id::text, kind, detail, at FROM ccp.instance_events WHERE database_id = $1 AND at >= $2 AND id > $3 ORDER BY id LIMIT $4",
      [id, since, afterId, limit],
    );
    return rows;
  }

  /** Drop events older than `days` days, and those of databases that are gone. */
  async pruneEvents(days: number): Promise<void> {
    await this.#pool.query(
      "DELETE FROM ccp.instance_events e WHERE e.at < now() - make_interval(days => $1) OR NOT EXISTS (SELECT 1 FROM ccp.databases d WHERE d.id = e.database_id)",
      [days],
    );
  }

  // --- metrics tokens ---

  async addMetricsToken(tokenHash: string): Promise<void> {
    await this.#pool.query("INSERT INTO ccp.metrics_tokens (token_hash) VALUES ($1)", [tokenHash]);
  }

  async metricsTokenHashes(): Promise<string[]> {
    const { rows } = await this.#pool.query<{ token_hash: string }>("SELECT token_hash FROM ccp.metrics_tokens");
    return rows.map((r) => r.token_hash);
  }

  // --- credentials ---

  async findCredential(databaseId: string, role: string): Promise<string | undefined> {
    const { rows } = await this.#pool.query<{ scram_verifier: string }>(
      "SELECT scram_verifier FROM ccp.credentials WHERE database_id = $1 AND role = $2",
      [databaseId, role],
    );
    return rows[0]?.scram_verifier;
  }

  async sealedPassword(databaseId: string, role: string): Promise<string | undefined> {
    const { rows } = await this.#pool.query<{ password_sealed: string }>(
      "SELECT password_sealed FROM ccp.credentials WHERE database_id = $1 AND role = $2",
      [databaseId, role],
    );
    return rows[0]?.password_sealed;
  }

  // --- operations ---

  async runningOperations(): Promise<OperationRow[]> {
    const { rows } = await this.#pool.query<OperationRow>(
      "SELECT id::text, database_id, kind, state FROM ccp.operations WHERE state = 'running' ORDER BY id",
    );
    return rows;
  }

  async finishOperation(id: string, state: "done" | "failed", error: string | null = null): Promise<void> {
    await this.#pool.query("UPDATE ccp.operations SET state = $2, error = $3, finished_at = now() WHERE id = $1", [id, state, error]);
  }
}

/** Insert an operation row inside a transaction; returns its id. */
export async function beginOperation(q: pg.PoolClient, databaseId: string, kind: string): Promise<string> {
  const { rows } = await q.query<{ id: string }>(
    "INSERT INTO ccp.operations (database_id, kind, state) VALUES ($1, $2, 'running') RETURNING id::text",
    [databaseId, kind],
  );
  return (rows[0] as { id: string }).id;
}
