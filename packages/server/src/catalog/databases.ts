import type { Queryable } from "./sql.js";

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

/** What a create records before it acts (status `creating`). */
export interface NewDatabase {
  readonly id: string;
  readonly name: string;
  readonly runtime: string;
  readonly pgVersion: string;
  readonly ownerRole: string;
  readonly databaseName: string;
  readonly tokenHash: string;
  readonly suspendAfter: string | null;
  readonly parentId: string | null;
  readonly expiresAt: Date | null;
  readonly branchedAt: Date | null;
  readonly branchLsn: string | null;
  /** The database's own limits by name (absent names: the server's defaults). */
  readonly limits?: Readonly<Record<string, number>>;
}

/** `ccp.databases`: one row per instance. */
export class DatabasesTable {
  readonly #q: Queryable;

  constructor(q: Queryable) {
    this.#q = q;
  }

  /** Record a database being created; a taken name fails with Postgres' unique violation (23505). */
  async insert(d: NewDatabase): Promise<void> {
    await this.#q.query(
      `INSERT INTO ccp.databases (id, name, status, runtime, pg_version, owner_role, database_name, token_hash, suspend_after, parent_id, expires_at, branched_at, branch_lsn, limits)
       VALUES ($1, $2, 'creating', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::pg_lsn, $13)`,
      [d.id, d.name, d.runtime, d.pgVersion, d.ownerRole, d.databaseName, d.tokenHash, d.suspendAfter, d.parentId, d.expiresAt, d.branchedAt, d.branchLsn, JSON.stringify(d.limits ?? {})],
    );
  }

  async list(): Promise<DatabaseRow[]> {
    const { rows } = await this.#q.query<DatabaseRow>("SELECT * FROM ccp.databases ORDER BY created_at, name");
    return rows;
  }

  /**
   * A database by id or by name: the id wins, deterministically, should a row
   * ever carry another database's id as its name (names of that shape are
   * refused, but rows from before that rule may exist).
   */
  async find(ref: string): Promise<DatabaseRow | undefined> {
    if (ref.includes("\0")) return undefined; // no id or name holds a NUL, and Postgres text cannot carry one
    const { rows } = await this.#q.query<DatabaseRow>(
      "SELECT * FROM ccp.databases WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC, created_at LIMIT 1",
      [ref],
    );
    return rows[0];
  }

  /** A database by id only: what the data plane (gateway, wire endpoint) resolves. */
  async findById(id: string): Promise<DatabaseRow | undefined> {
    if (id.includes("\0")) return undefined;
    const { rows } = await this.#q.query<DatabaseRow>("SELECT * FROM ccp.databases WHERE id = $1", [id]);
    return rows[0];
  }

  /** Branches of a database (branches/service.ts), oldest first. */
  async branchesOf(parentId: string): Promise<DatabaseRow[]> {
    const { rows } = await this.#q.query<DatabaseRow>("SELECT * FROM ccp.databases WHERE parent_id = $1 ORDER BY created_at, name", [parentId]);
    return rows;
  }

  async setStatus(id: string, status: DatabaseStatus, lastError: string | null = null): Promise<void> {
    await this.#q.query("UPDATE ccp.databases SET status = $2, last_error = $3, updated_at = now() WHERE id = $1", [id, status, lastError]);
  }

  /** Move a database from one status to another, only if it is still in the first (a wake racing a suspension). */
  async setStatusIf(id: string, from: DatabaseStatus, to: DatabaseStatus): Promise<void> {
    await this.#q.query("UPDATE ccp.databases SET status = $3, updated_at = now() WHERE id = $1 AND status = $2", [id, from, to]);
  }

  /** A created database is ready (its last error, from no earlier life, stays as it is). */
  async markReady(id: string): Promise<void> {
    await this.#q.query("UPDATE ccp.databases SET status = 'ready', updated_at = now() WHERE id = $1", [id]);
  }

  /** The intent of a destroy, recorded before the instance goes. */
  async markDestroying(id: string): Promise<void> {
    await this.#q.query("UPDATE ccp.databases SET status = 'destroying', updated_at = now() WHERE id = $1", [id]);
  }

  /** Mark a database suspended, only if it is still ready (a wake racing a suspension). */
  async markSuspended(id: string, lastActive: Date, wrote: boolean): Promise<void> {
    await this.#q.query(
      `UPDATE ccp.databases SET status = 'suspended', last_active_at = $2, last_write_at = CASE WHEN $3 THEN now() ELSE last_write_at END, updated_at = now()
        WHERE id = $1 AND status = 'ready'`,
      [id, lastActive, wrote],
    );
  }

  async addRestart(id: string): Promise<void> {
    await this.#q.query("UPDATE ccp.databases SET restarts = restarts + 1, updated_at = now() WHERE id = $1", [id]);
  }

  /** The ready databases of a runtime with their own suspend timeout (null: the server's default), for autosuspend. */
  async suspendTimeouts(runtime: string): Promise<{ id: string; suspend_after: string | null }[]> {
    const { rows } = await this.#q.query<{ id: string; suspend_after: string | null }>(
      "SELECT id, suspend_after FROM ccp.databases WHERE status = 'ready' AND runtime = $1",
      [runtime],
    );
    return rows;
  }

  async setSuspendAfter(id: string, value: string | null): Promise<void> {
    await this.#q.query("UPDATE ccp.databases SET suspend_after = $2, updated_at = now() WHERE id = $1", [id, value]);
  }

  async setTokenHash(id: string, tokenHash: string): Promise<void> {
    await this.#q.query("UPDATE ccp.databases SET token_hash = $2, updated_at = now() WHERE id = $1", [id, tokenHash]);
  }

  /** The database's own limits by name (absent names: the server's defaults). */
  async setLimits(id: string, limits: Record<string, number>): Promise<void> {
    await this.#q.query("UPDATE ccp.databases SET limits = $2, updated_at = now() WHERE id = $1", [id, JSON.stringify(limits)]);
  }

  /** Over its storage quota (usedBytes set) or back under it (null). */
  async setReadOnly(id: string, usedBytes: number | null): Promise<void> {
    await this.#q.query(
      usedBytes === null
        ? "UPDATE ccp.databases SET read_only_since = NULL, storage_used_bytes = NULL, updated_at = now() WHERE id = $1"
        : "UPDATE ccp.databases SET read_only_since = coalesce(read_only_since, now()), storage_used_bytes = $2, updated_at = now() WHERE id = $1",
      usedBytes === null ? [id] : [id, usedBytes],
    );
  }

  /** Where a branch was taken from its parent: an instant, an LSN, or both. */
  async setBranchOrigin(id: string, at: Date | null, lsn: string | null): Promise<void> {
    await this.#q.query("UPDATE ccp.databases SET branched_at = $2, branch_lsn = $3::pg_lsn, updated_at = now() WHERE id = $1", [id, at, lsn || null]);
  }

  /** Databases whose expiry has passed (and that are not being created or destroyed), oldest expiry first. */
  async expired(now: Date): Promise<string[]> {
    const { rows } = await this.#q.query<{ id: string }>(
      "SELECT id FROM ccp.databases WHERE expires_at <= $1 AND status NOT IN ('creating', 'destroying') ORDER BY expires_at",
      [now],
    );
    return rows.map((r) => r.id);
  }

  /** Delete a destroyed database's row; its branches stay, as standalone databases. */
  async delete(id: string): Promise<void> {
    await this.#q.query("DELETE FROM ccp.databases WHERE id = $1", [id]);
    await this.#q.query("UPDATE ccp.databases SET parent_id = NULL, updated_at = now() WHERE parent_id = $1", [id]);
  }

  /** Delete the row of a create that never finished (and only such a row). */
  async deleteCreating(id: string): Promise<void> {
    await this.#q.query("DELETE FROM ccp.databases WHERE id = $1 AND status = 'creating'", [id]);
  }
}
