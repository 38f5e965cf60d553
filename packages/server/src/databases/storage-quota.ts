import type { Catalog, DatabaseRow } from "../catalog/catalog.js";
import type { Logger } from "../logger.js";
import type { Instances } from "../runtime/instances.js";
import { withAdmin } from "./admin-connection.js";
import type { InstanceLimits } from "../runtime/driver.js";
import { limitsOfRow } from "./service.js";

/**
 * The storage quota (#15), enforced by ccpd: every `everyMs` each running
 * database's data + WAL (the driver's usage().storageBytes) is compared with its
 * storage limit. Past it, every tenant database of the instance gets
 * `default_transaction_read_only = on` and the tenant's sessions end, so new
 * ones (wire and gateway alike) start read-only; once a reading is back under the
 * limit the setting goes and sessions end again, so new ones can write.
 *
 * Why this design: Postgres never corrupts on a read-only transaction, ccp's own
 * admin sessions (backups, checkpoints, autovacuum) are untouched, and the tenant
 * can still free space the way Supabase documents it: `SET
 * default_transaction_read_only = off` (or `BEGIN READ WRITE`) in one session,
 * then DELETE/DROP and VACUUM. That escape also allows writes, so the quota is
 * soft: a tenant that insists can go past it until the next reading re-applies the
 * setting. A hard bound needs a filesystem quota, which this runtime does not set
 * up; the isolation report says so.
 */
export interface StorageQuotaOptions {
  readonly catalog: Catalog;
  readonly instances: Instances;
  /** The server's default limits (a database's own override them). */
  readonly defaultLimits: InstanceLimits;
  readonly log: Logger;
  readonly everyMs: number;
  /** Sessions of the database must go (gateway pools, wire sessions). */
  readonly endSessions: (id: string) => Promise<void>;
}

export class StorageQuota {
  readonly #o: StorageQuotaOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** One check per database at a time (the sampler and a limits change may meet). */
  readonly #checking = new Map<string, Promise<void>>();

  constructor(options: StorageQuotaOptions) {
    this.#o = options;
  }

  start(): void {
    if (this.#o.everyMs <= 0 || this.#timer) return;
    this.#timer = setInterval(() => {
      this.#running ??= this.tick().finally(() => (this.#running = undefined));
    }, this.#o.everyMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** Check every running database once (the sampler; tests call it directly). */
  async tick(): Promise<void> {
    const rows = await this.#o.catalog.databases.list();
    for (const row of rows) {
      if (row.status !== "ready") continue;
      await this.check(row.id).catch((err: Error) => this.#o.log.warn(`storage quota of ${row.id}: ${err.message}`));
    }
  }

  /** Check one database now (after a limits change, or a large write). */
  check(id: string): Promise<void> {
    let p = this.#checking.get(id);
    if (!p) {
      p = this.#check(id).finally(() => this.#checking.delete(id));
      this.#checking.set(id, p);
    }
    return p;
  }

  async #check(id: string): Promise<void> {
    const row = await this.#o.catalog.databases.findById(id);
    if (!row || row.status !== "ready") return;
    // A sleeping database writes nothing; it is checked again once awake.
    if ((await this.#o.instances.state(id)) !== "running") return;
    const limit = limitsOfRow(row, this.#o.defaultLimits).storageBytes;
    let used = (await this.#o.instances.usage(id)).storageBytes;
    if (used === undefined || limit === undefined) {
      if (row.read_only_since !== null) await this.#writable(row, used ?? 0);
      return;
    }
    if (used > limit) {
      // WAL a checkpoint can recycle is not the tenant's data: reclaim it before judging.
      await withAdmin(this.#o.instances.endpoint(id), "postgres", (c) => c.query("CHECKPOINT"));
      used = (await this.#o.instances.usage(id)).storageBytes ?? used;
    }
    const over = used > limit;
    if (over) {
      const first = row.read_only_since === null;
      // Applied on every reading while over: a tenant that RESET the setting gets it back.
      const changed = await this.#setReadOnly(row, true);
      await this.#o.catalog.databases.setReadOnly(id, used);
      if (first || changed) {
        this.#o.log.warn(`database ${id} is over its storage limit (${used} > ${limit} bytes): read-only for the tenant`);
        await this.#endSessions(row);
      }
    } else if (row.read_only_since !== null) {
      await this.#writable(row, used);
    }
  }

  async #writable(row: DatabaseRow, used: number): Promise<void> {
    await this.#setReadOnly(row, false);
    await this.#o.catalog.databases.setReadOnly(row.id, null);
    this.#o.log.info(`database ${row.id} is back under its storage limit (${used} bytes): writable again`);
    await this.#endSessions(row);
  }

  /** Set (or reset) the setting on every tenant database; true when any had to change. */
  async #setReadOnly(row: DatabaseRow, on: boolean): Promise<boolean> {
    const endpoint = this.#o.instances.endpoint(row.id);
    return withAdmin(endpoint, "postgres", async (client) => {
      const { rows } = await client.query<{ datname: string; set: boolean }>(
        `SELECT d.datname,
                EXISTS (SELECT 1 FROM pg_db_role_setting s
                         WHERE s.setdatabase = d.oid AND s.setrole = 0
                           AND 'default_transaction_read_only=on' = ANY (s.setconfig)) AS set
           FROM pg_database d WHERE NOT d.datistemplate AND d.datname <> 'postgres'`,
      );
      let changed = false;
      for (const d of rows) {
        if (d.set === on) continue;
        const name = d.datname.replaceAll('"', '""');
        await client.query(on ? `ALTER DATABASE "${name}" SET default_transaction_read_only = on` : `ALTER DATABASE "${name}" RESET default_transaction_read_only`);
        changed = true;
      }
      return changed;
    });
  }

  /** End the tenant's sessions (not ccp's own) so the next ones start with the new setting. */
  async #endSessions(row: DatabaseRow): Promise<void> {
    await this.#o.endSessions(row.id);
    const endpoint = this.#o.instances.endpoint(row.id);
    await withAdmin(endpoint, "postgres", (client) =>
      client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename <> $1 AND pid <> pg_backend_pid()", [
        endpoint.admin.user,
      ]),
    );
  }
}
