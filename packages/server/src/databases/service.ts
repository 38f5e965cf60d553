import type { Catalog, DatabaseRow } from "../catalog/catalog.js";
import { CcpError } from "../errors.js";
import { hashSecret, newDatabaseId, newDatabasePassword, newDatabaseToken } from "../ids.js";
import { validateDatabaseName } from "../names.js";
import { formatDuration, parseSuspendAfter, type Instances } from "../runtime/instances.js";
import { TENANT_DATABASE, TENANT_ROLE } from "../runtime/process/template.js";
import { seal, unseal } from "../secrets.js";
import { makeVerifier } from "../wire/scram.js";
import { applyConnectionLimit, installOwnerRole, validatePassword, validateProvision } from "./roles.js";
import { effectiveLimits, formatSize, LIMIT_FIELD, LIMIT_NAMES, limitViews, parseLimits, type LimitName, type LimitView } from "./limits.js";
import type { InstanceLimits, IsolationFeature } from "../runtime/driver.js";
import { TENANT_CONNECTION_SLOTS } from "../runtime/connection-slots.js";
import type { Headline } from "../observability/database-metrics.js";
import { lastBackupAt, liveStatus, tenantConnections, tenantDatabases, type LiveStatus } from "./status.js";
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
  /** Idle time after which it is suspended ("5m", "never"). */
  readonly suspend_after: string;
  /** Last request, wire session end, wake or start seen; null before any. */
  readonly last_active_at: string | null;
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
  /** Set while it is read-only for being over its storage quota (databases/storage-quota.ts). */
  readonly read_only?: ReadOnlyView;
  /** Every limit next to its usage (info only: `GET /v1/databases/{ref}`, `.../limits`). */
  readonly limits?: LimitView[];
}

export interface ReadOnlyView {
  readonly reason: "storage_quota";
  readonly since: string;
  readonly storage_used_bytes: number;
  readonly storage_limit_bytes: number | null;
  readonly message: string;
}

/** What a limits change did: which changes are in force now and which at the next start. */
export interface LimitsChange {
  readonly database: DatabaseView;
  readonly changed: LimitName[];
  readonly live: LimitName[];
  readonly next_start: LimitName[];
  /** The database was restarted to apply everything now (`restart: true`). */
  readonly restarted: boolean;
  /** Postgres settings that follow the limits (shared_buffers, max_connections, max_wal_size…) wait for the next start. */
  readonly settings_next_start: boolean;
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
  /** Commits + rollbacks per second over the last minute (or what ccpd has seen of it). */
  readonly tps: number | null;
  /** Share of block reads served from shared buffers, 0–1. */
  readonly cache_hit_rate: number | null;
  /** The database's storage limit; null: it has none (no driver sets limits yet). */
  readonly size_limit_bytes: number | null;
  /** WAL written but not yet in the backup store. */
  readonly wal_archive_lag_bytes: number | null;
  readonly last_archived_age_seconds: number | null;
  readonly suspend_after: string;
  readonly last_active_at: string | null;
}

/**
 * A create that starts from a backup instead of the template (point-in-time
 * restore into a new database): `populate` fills the new instance's data dir,
 * the first start replays WAL, and the owner role is the source's (it is in the data).
 */
export interface RestoreSource {
  readonly owner: string;
  /** The source database's id (recorded in the new database's `created` event). */
  readonly from?: string;
  populate(id: string): Promise<void>;
  readonly startOnce: { settings: Record<string, string>; timeoutMs: number; restoreWalFrom?: string };
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
  readonly instances: Instances;
  readonly domain: string;
  readonly log: Logger;
  /** Seals wire passwords in the catalog (secrets.ts). */
  readonly secret: Buffer;
  /** DATABASE_URL through the wire endpoint (wire/url.ts). */
  readonly databaseUrl: (o: { id: string; role: string; password: string; database: string }) => string;
  /** Platform events and metrics of creates, destroys and credential changes (observability/). */
  readonly observer?: DatabaseObserver;
  /** Headline figures of a running database for status (observability/database-metrics.ts). */
  readonly headline?: (row: DatabaseRow) => Promise<Headline | undefined>;
  /** Limits of databases without their own (config.ts). */
  readonly defaultLimits?: InstanceLimits;
  /** After a limits change (the storage quota checks the database again at once). */
  readonly limitsChanged?: (id: string) => Promise<void>;
}

/** What DatabaseService reports as it goes; never given a secret. */
export interface DatabaseObserver {
  created(id: string, seconds: number, restoredFrom: string | undefined): void;
  createFailed(): void;
  destroyed(id: string): void;
  passwordChanged(id: string): void;
  tokenRotated(id: string): void;
}

/** What `create` returns: the only time the token is shown. */
export interface CreatedDatabase {
  readonly database: DatabaseView;
  readonly token: string;
  readonly password: string;
  readonly database_url: string;
}

const NOT_FOUND_HINT = "List your databases with `ccp db list`.";

/** Validated limits without the nulls ("back to default" means "not its own" on a create). */
function ownOnly(parsed: Partial<Record<LimitName, number | null>>): Partial<Record<LimitName, number>> {
  const out: Partial<Record<LimitName, number>> = {};
  for (const [k, v] of Object.entries(parsed)) if (typeof v === "number") out[k as LimitName] = v;
  return out;
}

/** The tenant role's CONNECTION LIMIT for these limits; -1 (none) when every client slot is allowed. */
function roleConnectionLimit(limits: InstanceLimits): number {
  return limits.connections === undefined || limits.connections >= TENANT_CONNECTION_SLOTS ? -1 : limits.connections;
}

/** The one wording of "over its storage quota": what, how much, and what to do. */
export function storageQuotaMessage(id: string, usedBytes: number, limitBytes: number | null): string {
  const limit = limitBytes === null ? "its quota" : `its storage limit of ${formatSize(limitBytes)}`;
  return (
    `Database ${id} is read-only: it uses ${formatSize(usedBytes)} (data + WAL), over ${limit}. ` +
    "Free space (in a session: SET default_transaction_read_only = off; then DELETE or DROP, then VACUUM) " +
    "or raise the limit (`ccp db limits " + id + " --storage <size>`); it becomes writable again once under the limit."
  );
}

/** A row's own limits over the server's defaults: what its instance runs with. */
export function limitsOfRow(row: DatabaseRow, defaults: InstanceLimits): InstanceLimits {
  return effectiveLimits(row.limits as Partial<Record<LimitName, number>>, defaults);
}

/** Why a database is read-only, as every surface (API, gateway, wire notice) says it. */
export function readOnlyViewOf(row: DatabaseRow, defaults: InstanceLimits): ReadOnlyView {
  const used = Number(row.storage_used_bytes ?? 0);
  const limit = limitsOfRow(row, defaults).storageBytes ?? null;
  return {
    reason: "storage_quota",
    since: (row.read_only_since ?? new Date()).toISOString(),
    storage_used_bytes: used,
    storage_limit_bytes: limit,
    message: storageQuotaMessage(row.id, used, limit),
  };
}

/** Create, list, inspect, destroy and reconcile databases. The API and tests call this. */
export class DatabaseService {
  readonly #o: DatabaseServiceOptions;
  /** Database ids with an operation in flight in this process. */
  readonly #busy = new Set<string>();

  constructor(options: DatabaseServiceOptions) {
    this.#o = Object.freeze({ ...options });
  }

  /** The suspend timeout in force for a row (its own, else the server's). */
  #suspendAfter(row: DatabaseRow): string {
    return row.suspend_after ?? formatDuration(this.#o.instances.suspendAfterMs);
  }

  #lastActive(row: DatabaseRow): string | null {
    const live = this.#o.instances.activity(row.id).lastActive;
    const at = live && (!row.last_active_at || live > row.last_active_at) ? live : row.last_active_at;
    return at ? at.toISOString() : null;
  }

  async view(row: DatabaseRow): Promise<DatabaseView> {
    let status: string = row.status;
    const state = await this.#o.instances.state(row.id);
    // A wake or a suspension whose catalog write is still on its way: the instance knows first.
    if (status === "suspended" && state === "running") status = "ready";
    else if (status === "ready" && state === "suspended") status = "suspended";
    // The catalog says ready but the supervisor is bringing the server back.
    else if (status === "ready" && state !== "running") status = "restarting";
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
      suspend_after: this.#suspendAfter(row),
      last_active_at: this.#lastActive(row),
      ...(row.last_error ? { last_error: row.last_error } : {}),
      ...(row.parent_id ? { parent_id: row.parent_id } : {}),
      ...(row.branched_at ? { branched_at: row.branched_at.toISOString() } : {}),
      ...(row.branch_lsn ? { branch_lsn: row.branch_lsn } : {}),
      ...(row.expires_at ? { expires_at: row.expires_at.toISOString() } : {}),
      ...(row.read_only_since ? { read_only: this.readOnlyView(row) } : {}),
    };
  }

  /** The server's default limits (the driver's defaultLimits). */
  get defaultLimits(): InstanceLimits {
    return this.#o.defaultLimits ?? {};
  }

  /** A row's own limits over the server's defaults: what its instance runs with. */
  limitsOf(row: DatabaseRow): InstanceLimits {
    return limitsOfRow(row, this.defaultLimits);
  }

  /** Why a database is read-only, as every surface (API, gateway, wire notice) says it. */
  readOnlyView(row: DatabaseRow): ReadOnlyView {
    return readOnlyViewOf(row, this.defaultLimits);
  }

  /** The view with every limit next to its usage (info); never wakes a suspended database. */
  async detail(ref: string): Promise<DatabaseView> {
    const row = await this.getRow(ref);
    const view = await this.view(row);
    const usage = await this.#o.instances.usage(row.id).catch(() => ({}));
    let connections: number | null = null;
    if (view.status === "ready") connections = await tenantConnections(this.#o.instances.endpoint(row.id)).catch(() => null);
    return { ...view, limits: limitViews(row.limits as Partial<Record<LimitName, number>>, this.defaultLimits, usage, this.isolation(), connections) };
  }

  /** `GET /v1/server`: the runtime, the default limits by name, and the isolation report. */
  serverReport(version: string): { version: string; runtime: string; default_limits: Partial<Record<LimitName, number>>; isolation: IsolationFeature[] } {
    const defaults: Partial<Record<LimitName, number>> = {};
    for (const n of LIMIT_NAMES) {
      const v = this.defaultLimits[LIMIT_FIELD[n]];
      if (v !== undefined) defaults[n] = v;
    }
    return { version, runtime: this.#o.instances.driverName, default_limits: defaults, isolation: this.isolation() };
  }

  /** The driver's isolation report, with what ccpd itself enforces (connections; storage when the driver cannot). */
  isolation(): IsolationFeature[] {
    const features = [...this.#o.instances.isolation()];
    const storage = features.findIndex((f) => f.name === "storage");
    const hard = storage >= 0 ? features[storage] : undefined;
    if (hard && !hard.enforced) {
      features[storage] = { name: "storage", enforced: true, detail: `soft: ccpd measures data + WAL and makes a database read-only past its quota (${hard.detail})` };
    } else if (hard) {
      // The filesystem bound is the backstop: the read-only turn (and its clear error) comes first.
      features[storage] = { name: "storage", enforced: true, detail: `soft first: ccpd measures data + WAL and makes a database read-only past its limit; ${hard.detail}` };
    } else if (storage < 0) {
      features.push({ name: "storage", enforced: true, detail: "soft: ccpd measures data + WAL and makes a database read-only past its quota" });
    }
    if (!features.some((f) => f.name === "connections")) {
      features.push({ name: "connections", enforced: true, detail: "the tenant role's CONNECTION LIMIT (live) and max_connections (at the next start)" });
    }
    return features;
  }

  async list(): Promise<DatabaseView[]> {
    return Promise.all((await this.#o.catalog.databases.list()).map((r) => this.view(r)));
  }

  async getRow(ref: string): Promise<DatabaseRow> {
    const row = await this.#o.catalog.databases.find(ref);
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
  async create(nameInput: unknown, provision: ProvisionInput = {}, restore?: RestoreSource, settings: { suspendAfter?: unknown; limits?: unknown } = {}): Promise<CreatedDatabase> {
    const suspendAfter = settings.suspendAfter === undefined ? null : formatDuration(parseSuspendAfter(settings.suspendAfter));
    const ownLimits = ownOnly(parseLimits(settings.limits));
    const limits = effectiveLimits(ownLimits, this.defaultLimits);
    const provisioning = provision.owner !== undefined || provision.password !== undefined;
    const spec = provisioning ? validateProvision(nameInput, provision.owner, provision.password) : undefined;
    const name = spec ? spec.name : validateDatabaseName(nameInput);
    const role = restore?.owner ?? spec?.owner ?? TENANT_ROLE;
    const { catalog, instances } = this.#o;
    const id = newDatabaseId();
    const token = newDatabaseToken();
    const password = spec?.password ?? newDatabasePassword();
    let opId: string;
    try {
      opId = await catalog.tx(async (t) => {
        await t.databases.insert({
          id,
          name,
          runtime: instances.driverName,
          pgVersion: instances.pgVersion,
          ownerRole: role,
          databaseName: TENANT_DATABASE,
          tokenHash: hashSecret(token),
          suspendAfter,
          parentId: restore?.branch?.parentId ?? null,
          expiresAt: restore?.branch?.expiresAt ?? null,
          branchedAt: restore?.branch?.branchedAt ?? null,
          branchLsn: restore?.branch?.lsn ?? null,
          limits: ownLimits,
        });
        await t.credentials.insert(id, role, makeVerifier(password), seal(this.#o.secret, password));
        return t.operations.begin(id, "create");
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
    const startedAt = Date.now();
    try {
      if (restore) {
        await restore.populate(id);
        await instances.setLimits(id, limits);
        const endpoint = await instances.start(id, restore.startOnce);
        // The role came with the source's data, and its CONNECTION LIMIT with it.
        await applyConnectionLimit(endpoint, role, roleConnectionLimit(limits));
      } else {
        // A pre-started server when the pool has one: only what is this database's own is installed.
        const endpoint = await instances.create(id, limits);
        // pg_stat_statements collects from the first start (preloaded); its view is created on the first
        // insights call, off the create path, where it cost a connection and a CREATE EXTENSION (~40 ms).
        await installOwnerRole(endpoint, role);
        // Every slot is the template's own bound (max_connections): no extra statement on the common path.
        if (roleConnectionLimit(limits) >= 0) await applyConnectionLimit(endpoint, role, roleConnectionLimit(limits));
      }
      await catalog.tx(async (t) => {
        await t.databases.markReady(id);
        await t.operations.finish(opId, "done");
      });
    } catch (err) {
      this.#o.log.error(`create ${id} (${name}) failed: ${(err as Error).message}`);
      await instances.destroy(id).catch((e: Error) => this.#o.log.error(`cleanup of ${id} failed: ${e.message}`));
      await catalog.tx(async (t) => {
        await t.databases.delete(id);
        await t.operations.finish(opId, "failed", (err as Error).message);
      });
      this.#o.observer?.createFailed();
      throw new CcpError("internal", `Creating database "${name}" failed; nothing was left behind. Cause: ${(err as Error).message}`, { cause: err });
    } finally {
      this.#busy.delete(id);
    }
    this.#o.observer?.created(id, (Date.now() - startedAt) / 1000, restore ? restore.from : undefined);
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
    const updated = await this.#o.catalog.credentials.update(row.id, row.owner_role, makeVerifier(password), seal(this.#o.secret, password));
    if (!updated) throw new CcpError("not_found", `Database ${row.id} has no wire credentials for "${row.owner_role}".`);
    this.#o.observer?.passwordChanged(row.id);
    return { database: await this.view(row), database_url: this.#o.databaseUrl({ id: row.id, role: row.owner_role, password, database: row.database_name }) };
  }

  /** Issue a new HTTP token; the old one stops working at once (listeners drop cached rows). */
  async rotateToken(ref: string): Promise<{ database: DatabaseView; token: string }> {
    const row = this.#settled(await this.getRow(ref));
    const token = newDatabaseToken();
    await this.#o.catalog.databases.setTokenHash(row.id, hashSecret(token));
    await this.#o.instances.goingAway(row.id, "credentials");
    this.#o.observer?.tokenRotated(row.id);
    return { database: await this.view(row), token };
  }

  /** Credentials change only on a database that is neither being created nor destroyed. */
  #settled(row: DatabaseRow): DatabaseRow {
    if (this.#busy.has(row.id) || row.status === "creating" || row.status === "destroying") {
      throw new CcpError("conflict", `Database ${row.id} has an operation in progress (${row.status}).`, { hint: "Retry in a moment." });
    }
    return row;
  }

  /** State, size, connections, uptime and last backup (`ccp db status`); wakes a suspended database (admin work). */
  async status(ref: string): Promise<DatabaseStatusView> {
    let row = await this.getRow(ref);
    let live: LiveStatus | undefined;
    let headline: Headline | undefined;
    if (row.status === "ready" || row.status === "suspended") {
      const lease = await this.#o.instances.use(row.id).catch((err: Error) => {
        this.#o.log.warn(`status of ${row.id}: ${err.message}`);
        return undefined;
      });
      if (lease) {
        try {
          // One after the other: a connection still starting up shows in pg_stat_activity without its role, and would be counted.
          live = await liveStatus(lease.endpoint);
          await this.#o.instances.settled(row.id); // a wake's catalog write, so the headline sees it ready
          row = await this.getRow(row.id);
          headline = await this.#o.headline?.(row);
        } catch (err) {
          this.#o.log.warn(`status of ${row.id}: ${(err as Error).message}`);
        } finally {
          lease.release();
        }
      }
    }
    const view = await this.view(row);
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
      tps: headline?.tps ?? null,
      cache_hit_rate: headline?.cache_hit_rate ?? null,
      size_limit_bytes: this.limitsOf(row).storageBytes ?? null,
      wal_archive_lag_bytes: headline?.wal_archive_lag_bytes ?? null,
      last_archived_age_seconds: headline?.last_archived_age_seconds ?? null,
      suspend_after: view.suspend_after,
      last_active_at: view.last_active_at,
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
        // Never wakes a suspended database: listing is not activity.
        if (v.status !== "ready") return v;
        try {
          return { ...v, databases: await tenantDatabases(this.#o.instances.endpoint(v.id), timeoutMs) };
        } catch {
          return v;
        }
      }),
    );
  }

  /** The DATABASE_URL with its password (admin only: `ccp db info --show-secrets`). */
  async databaseUrl(ref: string): Promise<string> {
    const row = await this.getRow(ref);
    const sealed = await this.#o.catalog.credentials.sealedPassword(row.id, row.owner_role);
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
    const branches = await this.#o.catalog.databases.branchesOf(row.id);
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
      const opId = await this.#o.catalog.tx(async (t) => {
        await t.databases.markDestroying(row.id);
        return t.operations.begin(row.id, "destroy");
      });
      await this.#finishDestroy(row.id, opId);
    } finally {
      this.#busy.delete(row.id);
    }
    return { ...(await this.view(row)), status: "destroyed" };
  }

  async #finishDestroy(id: string, opId: string): Promise<void> {
    await this.#o.instances.destroy(id);
    await this.#o.catalog.tx(async (t) => {
      await t.databases.delete(id);
      await t.operations.finish(opId, "done");
    });
    this.#o.observer?.destroyed(id);
    await this.#o.instances.goingAway(id, "destroyed");
  }

  /**
   * Change a database's own limits (null: back to the server's default). The driver
   * applies what it can live; the tenant role's CONNECTION LIMIT and the storage
   * quota are live whenever the database runs; the rest (Postgres settings such as
   * shared_buffers and max_connections) at the next start, or now with `restart`.
   * Nothing changes on a bad input.
   */
  async setLimits(ref: string, input: unknown, options: { restart?: boolean } = {}): Promise<LimitsChange> {
    const parsed = parseLimits(input);
    const row = this.#settled(await this.getRow(ref));
    const own: Partial<Record<LimitName, number>> = { ...(row.limits as Partial<Record<LimitName, number>>) };
    for (const name of LIMIT_NAMES) {
      if (!(name in parsed)) continue;
      const v = parsed[name];
      if (v === null || v === undefined) delete own[name];
      else own[name] = v;
    }
    const before = this.limitsOf(row);
    const after = effectiveLimits(own, this.defaultLimits);
    const changed = LIMIT_NAMES.filter((n) => before[LIMIT_FIELD[n]] !== after[LIMIT_FIELD[n]]);
    const { instances } = this.#o;
    const lowered = after.memoryBytes !== undefined && (before.memoryBytes === undefined || after.memoryBytes < before.memoryBytes);
    if (lowered && !options.restart && (await instances.state(row.id)) === "running") {
      // The running server's shared_buffers were sized for the old limit: a live kernel limit below them would thrash or kill it.
      throw new CcpError("conflict", `Lowering memory of ${row.id} to ${formatSize(after.memoryBytes as number)} needs a restart: the running Postgres sized its shared buffers for ${before.memoryBytes === undefined ? "no limit" : formatSize(before.memoryBytes)}.`, {
        hint: "Apply it with a restart (`ccp db limits ... --restart`, API: restart=true), or suspend the database first: it then takes effect at the next wake.",
      });
    }
    this.#busy.add(row.id);
    let restarted = false;
    const live = new Set<LimitName>();
    /** Limits whose Postgres settings (shared_buffers, max_connections …) wait for the next start, even where the kernel part is live. */
    const settingsWait = new Set<LimitName>();
    try {
      await this.#o.catalog.databases.setLimits(row.id, own);
      const applied = await instances.setLimits(row.id, after);
      for (const n of LIMIT_NAMES) {
        if (applied.live.includes(LIMIT_FIELD[n])) live.add(n);
        if (applied.live.includes(LIMIT_FIELD[n]) && applied.nextStart.includes(LIMIT_FIELD[n])) settingsWait.add(n);
      }
      // The soft quota is live (below); a hard bound not yet at the new limit (a filesystem image's room) is said too.
      if (changed.includes("storage") && applied.nextStart.includes("storageBytes") && !applied.live.includes("storageBytes")) settingsWait.add("storage");
      const running = (await instances.state(row.id)) === "running";
      if (running && options.restart && changed.length > 0) {
        await instances.stop(row.id, "limits");
        await instances.start(row.id);
        restarted = true;
      }
      if (running && (changed.includes("connections") || restarted)) {
        await applyConnectionLimit(instances.endpoint(row.id), row.owner_role, roleConnectionLimit(after));
        live.add("connections");
      }
      // ccpd's own check, run at once below: live whenever the database runs.
      live.add("storage");
    } finally {
      this.#busy.delete(row.id);
    }
    await this.#o.limitsChanged?.(row.id);
    const inForce = restarted ? changed : changed.filter((n) => live.has(n));
    return {
      database: await this.detail(row.id),
      changed,
      live: inForce,
      next_start: changed.filter((n) => !inForce.includes(n) || (!restarted && settingsWait.has(n))),
      restarted,
      settings_next_start: !restarted && (await instances.state(row.id)) === "running" && changed.some((n) => n !== "pids" && n !== "io"),
    };
  }

  /** Change a database's suspend timeout (`ccp db update --suspend-after`); null input: back to the server's default. */
  async setSuspendAfter(ref: string, input: unknown): Promise<DatabaseView> {
    const value = input === null ? null : formatDuration(parseSuspendAfter(input));
    const row = await this.getRow(ref);
    await this.#o.catalog.databases.setSuspendAfter(row.id, value);
    return this.view(await this.getRow(row.id));
  }

  /** `ccp db suspend`: now, cleanly; refused while it has open sessions or requests. */
  async suspend(ref: string): Promise<DatabaseView> {
    const row = this.#settled(await this.getRow(ref));
    if (row.status !== "ready" && row.status !== "suspended") {
      throw new CcpError("conflict", `Database ${row.id} cannot be suspended while it is ${row.status}.`, { hint: "Retry when `ccp db info` shows it ready." });
    }
    await this.#o.instances.suspend(row.id, "manual");
    return this.view(await this.getRow(row.id));
  }

  /** `ccp db wake`: start a suspended database now (it then suspends again after its timeout). */
  async wake(ref: string): Promise<DatabaseView> {
    const row = this.#settled(await this.getRow(ref));
    if (row.status !== "ready" && row.status !== "suspended") {
      throw new CcpError("conflict", `Database ${row.id} cannot be woken while it is ${row.status}.`, { hint: "See `ccp db info`." });
    }
    (await this.#o.instances.use(row.id)).release();
    return this.view(await this.getRow(row.id));
  }

  /**
   * Bring the world back in line with the catalog after a start (or a crash):
   * undo interrupted creates, finish interrupted destroys, remove instance
   * directories the catalog does not know, and start every database that
   * should be running.
   */
  async reconcile(): Promise<void> {
    const { catalog, instances, log } = this.#o;
    for (const op of await catalog.operations.running()) {
      if (op.kind === "create") {
        log.warn(`reconcile: undoing interrupted create of ${op.database_id}`);
        await instances.destroy(op.database_id);
        await catalog.tx(async (t) => {
          await t.databases.deleteCreating(op.database_id);
          await t.operations.finish(op.id, "failed", "interrupted by a ccpd restart");
        });
      } else if (op.kind === "destroy") {
        log.warn(`reconcile: finishing interrupted destroy of ${op.database_id}`);
        await this.#finishDestroy(op.database_id, op.id);
      } else {
        await catalog.operations.finish(op.id, "failed", "interrupted by a ccpd restart");
      }
    }
    const rows = await catalog.databases.list();
    const known = new Set(rows.map((r) => r.id));
    for (const id of await instances.list()) {
      if (!known.has(id)) {
        log.warn(`reconcile: removing orphan instance ${id} (no catalog row)`);
        await instances.destroy(id);
      }
    }
    // Databases without limits of their own follow the server's defaults as they are now (a restart may have changed them).
    for (const row of rows.filter((r) => r.runtime === instances.driverName && (r.status === "ready" || r.status === "suspended" || r.status === "stopped"))) {
      await instances.setLimits(row.id, this.limitsOf(row)).catch((err: Error) => log.error(`reconcile: limits of ${row.id}: ${err.message}`));
    }
    // Suspended ones stay asleep (a server left running by a ccpd killed mid-wake is stopped).
    for (const row of rows.filter((r) => r.status === "suspended" && r.runtime === instances.driverName)) {
      await instances.settleAsleep(row.id).catch((err: Error) => log.error(`reconcile: ${row.id} should be asleep: ${err.message}`));
    }
    // Start in small batches: every start is cheap, but this machine has 2 cores.
    const toStart = rows.filter((r) => r.desired_state === "running" && r.status !== "suspended" && r.runtime === instances.driverName);
    for (let i = 0; i < toStart.length; i += 4) {
      await Promise.all(
        toStart.slice(i, i + 4).map(async (row) => {
          try {
            await instances.start(row.id);
            await catalog.databases.setStatus(row.id, "ready");
          } catch (err) {
            log.error(`reconcile: starting ${row.id} failed: ${(err as Error).message}`);
            await catalog.databases.setStatus(row.id, "failed", (err as Error).message);
          }
        }),
      );
    }
  }
}
