import type { Catalog, DatabaseRow } from "../catalog/catalog.js";
import { beginOperation } from "../catalog/catalog.js";
import { CcpError } from "../errors.js";
import { hashSecret, newDatabaseId, newDatabasePassword, newDatabaseToken } from "../ids.js";
import { validateDatabaseName } from "../names.js";
import type { RuntimeDriver } from "../runtime/driver.js";
import { TENANT_DATABASE, TENANT_ROLE } from "../runtime/process/template.js";
import { seal, unseal } from "../secrets.js";
import { makeVerifier } from "../wire/scram.js";
import { installOwnerRole, validatePassword, validateProvision } from "./roles.js";
import { lastBackupAt, liveStatus, tenantDatabases, type LiveStatus } from "./status.js";
import type { Logger } from "../logger.js";

/** A database as the API shows it. */
export interface DatabaseView {
  readonly id: string;
  readonly name: string;
  readonly status: string;
  readonly host: string;
  readonly database: string;
  readonly user: string;
  readonly pg_version: string;
  readonly runtime: string;
  readonly restarts: number;
  readonly created_at: string;
  readonly last_error?: string;
  /** Postgres databases inside the instance (list and info; absent when the instance could not be asked). */
  readonly databases?: string[];
  /** A branch's parent (branches/service.ts); absent for other databases. */
  readonly parent_id?: string;
  /** When a branch's data was taken from its parent. */
  readonly branched_at?: string;
  /** The parent's WAL position the branch's data was taken at. */
  readonly branch_lsn?: string;
  /** When ccpd destroys it by itself. */
  readonly expires_at?: string;
}

/** `GET /v1/databases/:ref/status`: live figures are null while the instance is not running. */
export interface DatabaseStatusView {
  readonly id: string;
  readonly name: string;
  readonly state: string;
  readonly host: string;
  readonly owner: string;
  readonly pg_version: string;
  readonly size_bytes: number | null;
  readonly connections: number | null;
  readonly max_connections: number | null;
  readonly started_at: string | null;
  readonly uptime_seconds: number | null;
  readonly last_backup_at: string | null;
  readonly databases: string[] | null;
}

/**
 * A create that starts from a backup instead of the template (point-in-time
 * restore into a new database): `populate` fills the new instance's data dir,
 * the first start replays WAL, and the owner role is the source's (it is in the data).
 */
export interface RestoreSource {
  readonly owner: string;
  populate(id: string): Promise<void>;
  readonly startOnce: { settings: Record<string, string>; timeoutMs: number };
  /** Set for a branch: recorded with the intent, so the row says what it is from the start. */
  readonly branch?: { readonly parentId: string; readonly expiresAt: Date | null; readonly branchedAt?: Date; readonly lsn?: string };
}

/** Optional part of a create: `ccp db provision NAME -U OWNER` (seed 003's rules apply to all three). */
export interface ProvisionInput {
  readonly owner?: unknown;
  readonly password?: unknown;
}

export interface DatabaseServiceOptions {
  readonly catalog: Catalog;
  readonly driver: RuntimeDriver;
  readonly domain: string;
  readonly log: Logger;
  /** Seals wire passwords in the catalog (secrets.ts). */
  readonly secret: Buffer;
  /** DATABASE_URL through the wire endpoint (wire/url.ts). */
  readonly databaseUrl: (o: { id: string; role: string; password: string; database: string }) => string;
}

/** What `create` returns: the only time the token is shown. */
export interface CreatedDatabase {
  readonly database: DatabaseView;
  readonly token: string;
  readonly password: string;
  readonly database_url: string;
}

const NOT_FOUND_HINT = "List your databases with `ccp db list`.";

/** Create, list, inspect, destroy and reconcile databases. The API and tests call this. */
export class DatabaseService {
  readonly #o: DatabaseServiceOptions;
  /** Called before a database's server goes away (destroy): close connections to it. */
  readonly #beforeRemove: ((id: string) => Promise<void>)[] = [];
  readonly #removed: ((id: string) => Promise<void>)[] = [];
  /** Called after a database's HTTP token changed: drop cached credentials at once. */
  readonly #tokenRotated: ((id: string) => Promise<void> | void)[] = [];
  /** Database ids with an operation in flight in this process. */
  readonly #busy = new Set<string>();

  constructor(options: DatabaseServiceOptions) {
    this.#o = Object.freeze({ ...options });
  }

  onBeforeRemove(listener: (id: string) => Promise<void>): void {
    this.#beforeRemove.push(listener);
  }

  /** Called once a database is gone (its backups go with it). */
  onRemoved(listener: (id: string) => Promise<void>): void {
    this.#removed.push(listener);
  }

  onTokenRotated(listener: (id: string) => Promise<void> | void): void {
    this.#tokenRotated.push(listener);
  }

  view(row: DatabaseRow): DatabaseView {
    let status: string = row.status;
    // The catalog says ready but the supervisor is bringing the server back.
    if (status === "ready" && this.#o.driver.state(row.id) !== "running") status = "restarting";
    return {
      id: row.id,
      name: row.name,
      status,
      host: `${row.id}.${this.#o.domain}`,
      database: row.database_name,
      user: row.owner_role,
      pg_version: row.pg_version,
      runtime: row.runtime,
      restarts: row.restarts,
      created_at: row.created_at.toISOString(),
      ...(row.last_error ? { last_error: row.last_error } : {}),
      ...(row.parent_id ? { parent_id: row.parent_id } : {}),
      ...(row.branched_at ? { branched_at: row.branched_at.toISOString() } : {}),
      ...(row.branch_lsn ? { branch_lsn: row.branch_lsn } : {}),
      ...(row.expires_at ? { expires_at: row.expires_at.toISOString() } : {}),
    };
  }

  async list(): Promise<DatabaseView[]> {
    return (await this.#o.catalog.listDatabases()).map((r) => this.view(r));
  }

  async getRow(ref: string): Promise<DatabaseRow> {
    const row = await this.#o.catalog.findDatabase(ref);
    if (!row) throw new CcpError("not_found", `No database with id or name "${ref}".`, { hint: NOT_FOUND_HINT });
    return row;
  }

  async get(ref: string): Promise<DatabaseView> {
    return this.view(await this.getRow(ref));
  }

  /**
   * Create a database: record intent (row `creating` + operation), copy the
   * template, start, then mark ready. Any failure undoes every step, so nothing
   * is left behind; a crash in between is undone by reconcile().
   * With `provision` (owner and password), seed 003's rules apply and the
   * instance's tenant role is that owner instead of the template's (roles.ts).
   */
  async create(nameInput: unknown, provision: ProvisionInput = {}, restore?: RestoreSource): Promise<CreatedDatabase> {
    const provisioning = provision.owner !== undefined || provision.password !== undefined;
    const spec = provisioning ? validateProvision(nameInput, provision.owner, provision.password) : undefined;
    const name = spec ? spec.name : validateDatabaseName(nameInput);
    const role = restore?.owner ?? spec?.owner ?? TENANT_ROLE;
    const { catalog, driver } = this.#o;
    const id = newDatabaseId();
    const token = newDatabaseToken();
    const password = spec?.password ?? newDatabasePassword();
    let opId: string;
    try {
      opId = await catalog.tx(async (q) => {
        await q.query(
          `INSERT INTO ccp.databases (id, name, status, runtime, pg_version, owner_role, database_name, token_hash, parent_id, expires_at, branched_at, branch_lsn)
           VALUES ($1, $2, 'creating', $3, $4, $5, $6, $7, $8, $9, $10, $11::pg_lsn)`,
          [
            id,
            name,
            driver.name,
            driver.pgVersion,
            role,
            TENANT_DATABASE,
            hashSecret(token),
            restore?.branch?.parentId ?? null,
            restore?.branch?.expiresAt ?? null,
            restore?.branch?.branchedAt ?? null,
            restore?.branch?.lsn ?? null,
          ],
        );
        await q.query("INSERT INTO ccp.credentials (database_id, role, scram_verifier, password_sealed) VALUES ($1, $2, $3, $4)", [
          id,
          role,
          makeVerifier(password),
          seal(this.#o.secret, password),
        ]);
        return beginOperation(q, id, "create");
      });
    } catch (err) {
      if ((err as { code?: string }).code === "23505") {
        throw new CcpError("name_taken", `A database named "${name}" already exists.`, {
          hint: "Pick another name, or see existing ones with `ccp db list`.",
        });
      }
      throw err;
    }
    this.#busy.add(id);
    try {
      if (restore) {
        await restore.populate(id);
        await driver.start(id, restore.startOnce);
      } else {
        await driver.create(id);
        await driver.start(id);
        await installOwnerRole(driver.endpoint(id), role);
      }
      await catalog.tx(async (q) => {
        await q.query("UPDATE ccp.databases SET status = 'ready', updated_at = now() WHERE id = $1", [id]);
        await q.query("UPDATE ccp.operations SET state = 'done', finished_at = now() WHERE id = $1", [opId]);
      });
    } catch (err) {
      this.#o.log.error(`create ${id} (${name}) failed: ${(err as Error).message}`);
      await driver.destroy(id).catch((e: Error) => this.#o.log.error(`cleanup of ${id} failed: ${e.message}`));
      await catalog.tx(async (q) => {
        await q.query("DELETE FROM ccp.databases WHERE id = $1", [id]);
        await q.query("UPDATE ccp.operations SET state = 'failed', error = $2, finished_at = now() WHERE id = $1", [opId, (err as Error).message]);
      });
      throw new CcpError("internal", `Creating database "${name}" failed; nothing was left behind. Cause: ${(err as Error).message}`, { cause: err });
    } finally {
      this.#busy.delete(id);
    }
    const database = await this.get(id);
    return { database, token, password, database_url: this.#o.databaseUrl({ id, role, password, database: TENANT_DATABASE }) };
  }

  /**
   * A new wire password for the owner role: the verifier the proxy checks and
   * the sealed copy behind DATABASE_URL change together. The proxy reads the
   * verifier per connection, so new sessions need the new password while open
   * ones carry on.
   */
  async resetPassword(ref: string, passwordInput: unknown): Promise<{ database: DatabaseView; database_url: string }> {
    const password = validatePassword(passwordInput);
    const row = this.#settled(await this.getRow(ref));
    const { rowCount } = await this.#o.catalog.tx((q) =>
      q.query("UPDATE ccp.credentials SET scram_verifier = $3, password_sealed = $4, updated_at = now() WHERE database_id = $1 AND role = $2", [
        row.id,
        row.owner_role,
        makeVerifier(password),
        seal(this.#o.secret, password),
      ]),
    );
    if (rowCount !== 1) throw new CcpError("not_found", `Database ${row.id} has no wire credentials for "${row.owner_role}".`);
    return { database: this.view(row), database_url: this.#o.databaseUrl({ id: row.id, role: row.owner_role, password, database: row.database_name }) };
  }

  /** Issue a new HTTP token; the old one stops working at once (listeners drop cached rows). */
  async rotateToken(ref: string): Promise<{ database: DatabaseView; token: string }> {
    const row = this.#settled(await this.getRow(ref));
    const token = newDatabaseToken();
    await this.#o.catalog.tx((q) => q.query("UPDATE ccp.databases SET token_hash = $2, updated_at = now() WHERE id = $1", [row.id, hashSecret(token)]));
    for (const listener of this.#tokenRotated) await listener(row.id);
    return { database: this.view(row), token };
  }

  /** Credentials change only on a database that is neither being created nor destroyed. */
  #settled(row: DatabaseRow): DatabaseRow {
    if (this.#busy.has(row.id) || row.status === "creating" || row.status === "destroying") {
      throw new CcpError("conflict", `Database ${row.id} has an operation in progress (${row.status}).`, { hint: "Retry in a moment." });
    }
    return row;
  }

  /** State, size, connections, uptime and last backup (`ccp db status`). */
  async status(ref: string): Promise<DatabaseStatusView> {
    const row = await this.getRow(ref);
    const view = this.view(row);
    let live: LiveStatus | undefined;
    if (row.status === "ready" && this.#o.driver.state(row.id) === "running") {
      try {
        live = await liveStatus(this.#o.driver.endpoint(row.id));
      } catch (err) {
        this.#o.log.warn(`status of ${row.id}: ${(err as Error).message}`);
      }
    }
    return {
      id: row.id,
      name: row.name,
      state: view.status,
      host: view.host,
      owner: row.owner_role,
      pg_version: live?.pg_version ?? row.pg_version,
      size_bytes: live?.size_bytes ?? null,
      connections: live?.connections ?? null,
      max_connections: live?.max_connections ?? null,
      started_at: live?.started_at ?? null,
      uptime_seconds: live?.uptime_seconds ?? null,
      last_backup_at: await lastBackupAt(this.#o.catalog, row.id),
      databases: live?.databases ?? null,
    };
  }

  /**
   * Views with the Postgres databases inside each running instance, asked
   * concurrently with a short timeout each, so a slow instance costs a list
   * at most that long and just shows no databases.
   */
  async withDatabases(views: readonly DatabaseView[], timeoutMs = 1_000): Promise<DatabaseView[]> {
    return Promise.all(
      views.map(async (v) => {
        if (v.status !== "ready") return v;
        try {
          return { ...v, databases: await tenantDatabases(this.#o.driver.endpoint(v.id), timeoutMs) };
        } catch {
          return v;
        }
      }),
    );
  }

  /** The DATABASE_URL with its password (admin only: `ccp db info --show-secrets`). */
  async databaseUrl(ref: string): Promise<string> {
    const row = await this.getRow(ref);
    const sealed = await this.#o.catalog.sealedPassword(row.id, row.owner_role);
    if (!sealed) throw new CcpError("not_found", `Database ${row.id} has no wire password.`);
    return this.#o.databaseUrl({ id: row.id, role: row.owner_role, password: unseal(this.#o.secret, sealed), database: row.database_name });
  }

  /**
   * Destroy: mark `destroying` with an operation row, stop, remove files, delete the row.
   * A parent with branches is refused (409, the branches named) unless `force`: then
   * its branches stay, as standalone databases.
   */
  async destroy(ref: string, options: { force?: boolean } = {}): Promise<DatabaseView> {
    const row = await this.getRow(ref);
    const branches = await this.#o.catalog.branchesOf(row.id);
    if (branches.length > 0 && !options.force) {
      const names = branches.map((b) => `${b.name} (${b.id})`).join(", ");
      throw new CcpError("conflict", `Database ${row.id} has ${branches.length} branch${branches.length === 1 ? "" : "es"}: ${names}.`, {
        hint: "Destroy the branches first, or destroy it anyway with force=true (`ccp db destroy` asks); its branches then stay as standalone databases.",
        details: { branches: branches.map((b) => b.id) },
      });
    }
    if (this.#busy.has(row.id)) {
      throw new CcpError("conflict", `Database ${row.id} has an operation in progress.`, { hint: "Retry in a moment." });
    }
    this.#busy.add(row.id);
    try {
      const opId = await this.#o.catalog.tx(async (q) => {
        await q.query("UPDATE ccp.databases SET status = 'destroying', updated_at = now() WHERE id = $1", [row.id]);
        return beginOperation(q, row.id, "destroy");
      });
      await this.#finishDestroy(row.id, opId);
    } finally {
      this.#busy.delete(row.id);
    }
    return { ...this.view(row), status: "destroyed" };
  }

  async #finishDestroy(id: string, opId: string): Promise<void> {
    for (const listener of this.#beforeRemove) await listener(id);
    await this.#o.driver.destroy(id);
    await this.#o.catalog.tx(async (q) => {
      await q.query("DELETE FROM ccp.databases WHERE id = $1", [id]);
      await q.query("UPDATE ccp.databases SET parent_id = NULL, updated_at = now() WHERE parent_id = $1", [id]);
      await q.query("UPDATE ccp.operations SET state = 'done', finished_at = now() WHERE id = $1", [opId]);
    });
    for (const listener of this.#removed) await listener(id);
  }

  /**
   * Bring the world back in line with the catalog after a start (or a crash):
   * undo interrupted creates, finish interrupted destroys, remove instance
   * directories the catalog does not know, and start every database that
   * should be running.
   */
  async reconcile(): Promise<void> {
    const { catalog, driver, log } = this.#o;
    for (const op of await catalog.runningOperations()) {
      if (op.kind === "create") {
        log.warn(`reconcile: undoing interrupted create of ${op.database_id}`);
        await driver.destroy(op.database_id);
        await catalog.tx(async (q) => {
          await q.query("DELETE FROM ccp.databases WHERE id = $1 AND status = 'creating'", [op.database_id]);
          await q.query("UPDATE ccp.operations SET state = 'failed', error = 'interrupted by a ccpd restart', finished_at = now() WHERE id = $1", [op.id]);
        });
      } else if (op.kind === "destroy") {
        log.warn(`reconcile: finishing interrupted destroy of ${op.database_id}`);
        await this.#finishDestroy(op.database_id, op.id);
      } else {
        await catalog.finishOperation(op.id, "failed", "interrupted by a ccpd restart");
      }
    }
    const rows = await catalog.listDatabases();
    const known = new Set(rows.map((r) => r.id));
    for (const id of await driver.list()) {
      if (!known.has(id)) {
        log.warn(`reconcile: removing orphan instance ${id} (no catalog row)`);
        await driver.destroy(id);
      }
    }
    // Start in small batches: every start is cheap, but this machine has 2 cores.
    const toStart = rows.filter((r) => r.desired_state === "running" && r.runtime === driver.name);
    for (let i = 0; i < toStart.length; i += 4) {
      await Promise.all(
        toStart.slice(i, i + 4).map(async (row) => {
          try {
            await driver.start(row.id);
            await catalog.setStatus(row.id, "ready");
          } catch (err) {
            log.error(`reconcile: starting ${row.id} failed: ${(err as Error).message}`);
            await catalog.setStatus(row.id, "failed", (err as Error).message);
          }
        }),
      );
    }
  }
}
