import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { Catalog } from "../catalog/catalog.js";
import { ADMIN_APPLICATION_NAME, withAdmin } from "../databases/admin-connection.js";
import { CcpError } from "../errors.js";
import type { Logger } from "../logger.js";
import { formatDuration, parseSuspendAfter } from "./suspend-after.js";
import type { InstanceEndpoint, InstanceLimits, InstanceState, InstanceStorage, InstanceUsage, IsolationFeature, LimitsApplied, RestartEvent, RuntimeDriver, StartOptions } from "./driver.js";

/**
 * The one way callers (gateway, wire endpoint, databases, backups, status) reach
 * an instance: never a driver directly. It wakes a suspended instance once however
 * many callers ask at the same moment, hands out leases whose activity drives
 * autosuspend, suspends idle instances cleanly (WAL archived up to the suspension),
 * and owns the one "instance going away" hook.
 */

/** Held by every request and wire session for as long as it uses the instance. */
export interface Lease {
  readonly id: string;
  readonly endpoint: InstanceEndpoint;
  /** Idempotent. */
  release(): void;
}

/**
 * Why an instance's connections must go (listeners close pools and sessions):
 * suspend (no lease is held then), restore, destroy, destroyed (after removal:
 * its backups go), credentials (the HTTP token changed: cached rows only),
 * limits (changed limits, or read-only for its storage quota: sessions end so new ones follow).
 */
export type GoingAway = "suspend" | "restore" | "destroy" | "destroyed" | "credentials" | "limits";

/** Lifecycle events, for metrics and logs. */
export interface InstanceEvents {
  /** A suspended instance was started; `waiters`: callers that shared this one start. */
  wake: [{ readonly id: string; readonly ms: number; readonly waiters: number }];
  "wake-failed": [{ readonly id: string; readonly error: Error }];
  suspend: [{ readonly id: string; readonly reason: "idle" | "manual"; readonly ms: number; readonly archivedWal: string | null }];
  /** An idle instance could not be suspended (busy backends, archiver behind); it stays up. */
  "suspend-skipped": [{ readonly id: string; readonly reason: string }];
  /** Forwarded from the driver. */
  exit: [RestartEvent];
  restart: [{ readonly id: string; readonly error?: Error }];
  state: [{ readonly id: string; readonly state: InstanceState }];
}

export interface InstancesOptions {
  readonly driver: RuntimeDriver;
  readonly catalog: Catalog;
  readonly log: Logger;
  /** Server default suspend timeout in ms; null: never. */
  readonly suspendAfterMs: number | null;
  /** How long a caller waits for a wake before a retryable "waking" error. */
  readonly wakeTimeoutMs: number;
  /** How long a suspend waits for the archiver to take the last WAL segment. */
  readonly archiveWaitMs?: number;
  /** Injected clock (ms). */
  readonly now?: () => number;
}

/** A WAL position and the next transaction id at a moment nothing needed archiving. */
export interface Quiet {
  readonly lsn: string;
  readonly xmax: string;
}

/**
 * WAL that is not a change of data (standby snapshots every 15 s after activity,
 * checkpoint records) is small; past this much, or with any transaction id assigned,
 * the instance counts as written since the quiet point.
 */
const NOISE_WAL_BYTES = 64 * 1024;
const QUIET_SQL = "SELECT pg_current_wal_insert_lsn()::text AS lsn, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax";

interface Activity {
  leases: number;
  /** Last lease release, start or wake (ms). */
  lastActive: number;
  /** Where nothing needed archiving (after a wake, after a backup); undefined: unknown. */
  quiet: Quiet | undefined;
  /** The last wake's catalog writes (a suspend's own must come after them). */
  bookkeeping: Promise<void> | undefined;
}

/** Backends that count as activity: tenants' sessions other than idle gateway-pool ones, autovacuum, walsenders. */
const BUSY_BACKENDS_SQL = `
  SELECT count(*)::int AS n FROM pg_stat_activity
   WHERE pid <> pg_backend_pid()
     AND (backend_type IN ('autovacuum worker', 'walsender')
          OR (backend_type = 'client backend'
              AND application_name <> $1
              AND NOT (application_name = 'ccp-gateway' AND state = 'idle')))`;

export class Instances {
  readonly events = new EventEmitter<InstanceEvents>();
  readonly #o: InstancesOptions;
  readonly #activity = new Map<string, Activity>();
  readonly #waking = new Map<string, { promise: Promise<void>; waiters: number }>();
  readonly #suspending = new Map<string, Promise<boolean>>();
  readonly #goingAway: ((id: string, why: GoingAway) => Promise<void> | void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #closed = false;

  constructor(options: InstancesOptions) {
    this.#o = Object.freeze({ ...options });
    const d = options.driver.events;
    d.on("exit", (e) => this.events.emit("exit", e));
    d.on("restart", (e) => this.events.emit("restart", e));
    d.on("state", (e) => this.events.emit("state", e));
  }

  #now(): number {
    return this.#o.now?.() ?? Date.now();
  }

  #entry(id: string): Activity {
    let a = this.#activity.get(id);
    if (!a) this.#activity.set(id, (a = { leases: 0, lastActive: this.#now(), quiet: undefined, bookkeeping: undefined }));
    return a;
  }

  // --- what callers need of the driver, behind this layer ---

  get driverName(): string {
    return this.#o.driver.name;
  }
  get pgVersion(): string {
    return this.#o.driver.pgVersion;
  }
  get storage(): InstanceStorage {
    return this.#o.driver.storage;
  }
  get suspendAfterMs(): number | null {
    return this.#o.suspendAfterMs;
  }
  state(id: string): Promise<InstanceState> {
    return this.#o.driver.state(id);
  }
  list(): Promise<string[]> {
    return this.#o.driver.list();
  }
  /** Provision and start a new instance (a pre-started one when the driver has it). */
  async create(id: string, limits?: InstanceLimits): Promise<InstanceEndpoint> {
    await this.#o.driver.create(id, limits);
    return this.start(id);
  }
  /** Record new limits with the driver; it says which took effect now and which at the next start. */
  setLimits(id: string, limits: InstanceLimits): Promise<LimitsApplied> {
    return this.#o.driver.setLimits(id, limits);
  }
  usage(id: string): Promise<InstanceUsage> {
    return this.#o.driver.usage(id);
  }
  isolation(): readonly IsolationFeature[] {
    return this.#o.driver.isolation();
  }
  async start(id: string, once?: StartOptions): Promise<InstanceEndpoint> {
    const endpoint = await this.#o.driver.start(id, once);
    const a = this.#entry(id);
    a.lastActive = this.#now();
    a.quiet = undefined; // not a wake: what was written before is not known to be archived
    return endpoint;
  }
  /** Stop without suspending (restore, tests): nothing wakes it until started again. */
  async stop(id: string, why?: GoingAway): Promise<void> {
    if (why) await this.goingAway(id, why);
    await this.#o.driver.stop(id);
  }
  async destroy(id: string): Promise<void> {
    await this.goingAway(id, "destroy");
    await this.#o.driver.destroy(id);
    this.#activity.delete(id);
  }
  /** Make sure an instance the catalog says is suspended is asleep (after a restart; stops a server left running). */
  async settleAsleep(id: string): Promise<void> {
    if ((await this.#o.driver.state(id)) === "absent") return;
    await this.#o.driver.suspend(id);
  }
  /** The endpoint without a lease: platform work on an instance known to be up (create, restore). */
  endpoint(id: string): InstanceEndpoint {
    return this.#o.driver.endpoint(id);
  }

  // --- the "going away" hook ---

  /** One listener list for every reason an instance's connections must go. */
  onGoingAway(listener: (id: string, why: GoingAway) => Promise<void> | void): void {
    this.#goingAway.push(listener);
  }

  async goingAway(id: string, why: GoingAway): Promise<void> {
    for (const l of this.#goingAway) await l(id, why);
  }

  // --- leases and waking ---

  /** Leases held now and the last activity (status, list, tests). */
  activity(id: string): { leases: number; lastActive: Date | undefined } {
    const a = this.#activity.get(id);
    return { leases: a?.leases ?? 0, lastActive: a ? new Date(a.lastActive) : undefined };
  }

  /**
   * A lease on a running instance, waking it first when it is suspended (every
   * caller arriving meanwhile shares the one start). A caller arriving while the
   * instance is being suspended waits for that and then wakes it. Past
   * `timeoutMs` (default: the wake timeout) it gets a retryable `not_ready`
   * (details.reason "waking"); the wake itself carries on.
   */
  async use(id: string, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Lease> {
    const deadline = this.#now() + (options.timeoutMs ?? this.#o.wakeTimeoutMs);
    for (;;) {
      options.signal?.throwIfAborted();
      const suspending = this.#suspending.get(id);
      if (suspending) {
        await this.#within(suspending.catch(() => false), id, deadline, options.signal);
        continue;
      }
      const waking = this.#waking.get(id);
      if (waking) {
        waking.waiters++;
        await this.#within(waking.promise, id, deadline, options.signal);
        continue;
      }
      const state = await this.#o.driver.state(id);
      if (this.#suspending.has(id) || this.#waking.has(id)) continue;
      if (state === "running") return this.#lease(id);
      if (state === "suspended") {
        this.#wake(id);
        continue;
      }
      throw new CcpError("not_ready", `Database ${id} is not ready (${state === "stopped" || state === "starting" ? "restarting" : state}).`, {
        hint: "Retry shortly.",
      });
    }
  }

  #lease(id: string): Lease {
    const a = this.#entry(id);
    a.leases++;
    let released = false;
    return {
      id,
      endpoint: this.#o.driver.endpoint(id),
      release: () => {
        if (released) return;
        released = true;
        a.leases--;
        a.lastActive = this.#now();
      },
    };
  }

  async #within(promise: Promise<unknown>, id: string, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    const left = deadline - this.#now();
    if (left <= 0) throw this.#wakingError(id);
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const outcome = await Promise.race([
        promise.then(() => "done" as const),
        sleep(left, "timeout" as const, { signal: ac.signal, ref: false }).catch(() => "aborted" as const),
      ]);
      if (outcome === "timeout") throw this.#wakingError(id);
      if (outcome === "aborted") signal?.throwIfAborted();
    } finally {
      ac.abort();
      signal?.removeEventListener("abort", onAbort);
    }
  }

  #wakingError(id: string): CcpError {
    return new CcpError("not_ready", `Database ${id} is waking up and did not accept connections in time.`, {
      hint: "Retry in a moment: it is still starting.",
      details: { reason: "waking" },
    });
  }

  /**
   * Start a suspended instance once; later callers join this start. They go on
   * as soon as it accepts connections: the bookkeeping (catalog status, event)
   * follows off their path, and a suspend waits for it.
   */
  #wake(id: string): void {
    const t0 = this.#now();
    const entry = { promise: Promise.resolve(), waiters: 0 };
    entry.promise = (async () => {
      try {
        await this.#o.driver.start(id);
      } catch (err) {
        this.#o.log.error(`waking ${id} failed: ${(err as Error).message}`);
        this.events.emit("wake-failed", { id, error: err as Error });
        throw new CcpError("not_ready", `Database ${id} could not be woken up: ${(err as Error).message.split("\n")[0]}`, {
          hint: "Retry shortly; if it keeps failing, see `ccp db info`.",
          cause: err,
        });
      }
      const ms = this.#now() - t0;
      const a = this.#entry(id);
      a.lastActive = this.#now();
      // a.quiet stays what the suspension recorded: a clean restart keeps the next transaction id, and
      // its shutdown checkpoint is far below the noise threshold.
      a.bookkeeping = (async () => {
        await this.#o.catalog.databases.setStatusIf(id, "suspended", "ready");
        this.events.emit("wake", { id, ms, waiters: entry.waiters });
      })().catch((err: Error) => this.#o.log.error(`recording the wake of ${id}: ${err.message}`));
    })().finally(() => this.#waking.delete(id));
    entry.promise.catch(() => undefined);
    this.#waking.set(id, entry);
  }

  /** Settles once the last wake's bookkeeping (catalog status, event) is written (tests, suspend). */
  async settled(id: string): Promise<void> {
    await this.#activity.get(id)?.bookkeeping;
  }

  /** The quiet point now, on an admin session (after a base backup, whose WAL is archived). */
  static readonly QUIET_SQL = QUIET_SQL;

  /** After a base backup: everything up to `quiet` is archived, so a suspend with nothing written after it need not switch segments. */
  noteQuiet(id: string, quiet: Quiet | undefined): void {
    this.#entry(id).quiet = quiet;
  }

  // --- suspending ---

  /**
   * Suspend now, cleanly: refused while leases are held (manual) or skipped
   * (idle) when backends are busy; otherwise the WAL written since the last
   * switch is stamped, switched and archived, a checkpoint is taken, and the
   * driver stops the server. Resolves true when it was suspended.
   */
  suspend(id: string, reason: "idle" | "manual" = "manual"): Promise<boolean> {
    const current = this.#suspending.get(id);
    if (current) return current;
    const waking = this.#waking.get(id);
    const a = this.#entry(id);
    if (waking || a.leases > 0) {
      if (reason === "idle") return Promise.resolve(false);
      return Promise.reject(
        new CcpError("conflict", `Database ${id} is in use (${a.leases} open session${a.leases === 1 ? "" : "s"} or requests${waking ? ", waking up" : ""}).`, {
          hint: "Close its connections and retry, or let it suspend by itself when idle.",
        }),
      );
    }
    const promise = this.#suspend(id, reason).finally(() => this.#suspending.delete(id));
    this.#suspending.set(id, promise);
    return promise;
  }

  async #suspend(id: string, reason: "idle" | "manual"): Promise<boolean> {
    const t0 = this.#now();
    await this.settled(id);
    const state = await this.#o.driver.state(id);
    if (state === "suspended") return true;
    if (state !== "running") {
      if (reason === "idle") return false;
      throw new CcpError("conflict", `Database ${id} cannot be suspended while it is ${state}.`, { hint: "Retry when `ccp db info` shows it ready." });
    }
    const a = this.#entry(id);
    let archivedWal: string | null = null;
    let wrote = false;
    let quiet: Quiet | undefined;
    try {
      const ready = await withAdmin(
        this.#o.driver.endpoint(id),
        "postgres",
        async (c) => {
          const busy = (await c.query<{ n: number }>(BUSY_BACKENDS_SQL, [ADMIN_APPLICATION_NAME])).rows[0]?.n ?? 0;
          if (busy > 0) return `${busy} busy backend${busy === 1 ? "" : "s"}`;
          if (a.quiet) {
            const { rows } = await c.query<{ wal: string; xmax: string }>(
              "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::text AS wal, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax",
              [a.quiet.lsn],
            );
            wrote = rows[0]?.xmax !== a.quiet.xmax || Number(rows[0]?.wal) > NOISE_WAL_BYTES;
          } else {
            wrote = true;
          }
          if (wrote) {
            // A commit stamped now, so point-in-time recovery to any instant up to the suspension finds
            // a later commit to stop at; then the segment switch, and the archiver must have it.
            await c.query("SELECT pg_current_xact_id()");
            const { rows } = await c.query<{ wal: string; mode: string }>("SELECT pg_walfile_name(pg_switch_wal()) AS wal, current_setting('archive_mode') AS mode");
            const wal = rows[0]?.wal ?? "";
            if (rows[0]?.mode !== "off") {
              const until = this.#now() + (this.#o.archiveWaitMs ?? 60_000);
              for (;;) {
                const r = await c.query<{ last: string | null }>("SELECT last_archived_wal AS last FROM pg_stat_archiver");
                if ((r.rows[0]?.last ?? "").slice(8) >= wal.slice(8)) break;
                if (this.#now() > until) return `the archiver has not taken ${wal} yet`;
                await sleep(20);
              }
              archivedWal = wal;
            }
          }
          // Where the next suspend compares from: nothing needs archiving up to here.
          quiet = (await c.query<Quiet>(QUIET_SQL)).rows[0];
          // The shutdown checkpoint then has almost nothing to write.
          await c.query("CHECKPOINT");
          return undefined;
        },
        30_000,
      );
      if (ready !== undefined) {
        a.lastActive = this.#now();
        this.events.emit("suspend-skipped", { id, reason: ready });
        if (reason === "manual") throw new CcpError("conflict", `Database ${id} cannot be suspended now: ${ready}.`, { hint: "Retry when it is idle." });
        return false;
      }
      await this.goingAway(id, "suspend");
      await this.#o.driver.suspend(id);
    } catch (err) {
      if (err instanceof CcpError) throw err;
      this.#o.log.warn(`suspending ${id} failed, it stays up: ${(err as Error).message}`);
      this.events.emit("suspend-skipped", { id, reason: (err as Error).message });
      if (reason === "manual") throw new CcpError("internal", `Suspending ${id} failed: ${(err as Error).message}`, { cause: err });
      return false;
    }
    a.quiet = quiet;
    // The platform event ("suspended", "woken") and the metrics are the listeners' (observability).
    await this.#o.catalog.databases.markSuspended(id, new Date(a.lastActive), wrote);
    this.events.emit("suspend", { id, reason, ms: this.#now() - t0, archivedWal });
    return true;
  }

  // --- autosuspend ---

  /** Check for idle instances now and then (the interval follows the shortest timeout in use). */
  startAutosuspend(): void {
    const schedule = (ms: number) => {
      if (this.#closed) return;
      this.#timer = setTimeout(() => {
        this.#ticking = this.tick()
          .catch((err: Error) => {
            this.#o.log.error(`autosuspend: ${err.message}`);
            return 15_000;
          })
          .then((next) => schedule(next))
          .finally(() => (this.#ticking = undefined)) as Promise<void>;
      }, ms);
      this.#timer.unref();
    };
    schedule(0);
  }

  /** One autosuspend pass; returns the delay until the next one. */
  async tick(): Promise<number> {
    const rows = await this.#o.catalog.databases.suspendTimeouts(this.#o.driver.name);
    let shortest = Math.min(60_000, this.#o.suspendAfterMs ?? 60_000);
    for (const row of rows) {
      if (this.#closed) break;
      const limit = row.suspend_after === null ? this.#o.suspendAfterMs : parseSuspendAfter(row.suspend_after);
      if (limit === null) continue;
      shortest = Math.min(shortest, limit);
      const a = this.#entry(row.id);
      if (a.leases > 0 || this.#waking.has(row.id) || this.#suspending.has(row.id)) continue;
      if (this.#now() - a.lastActive < limit) continue;
      if ((await this.#o.driver.state(row.id)) !== "running") continue;
      await this.suspend(row.id, "idle").catch((err: Error) => this.#o.log.warn(`autosuspend of ${row.id}: ${err.message}`));
    }
    return Math.min(15_000, Math.max(100, Math.floor(shortest / 5)));
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#ticking;
    await Promise.all([...this.#suspending.values()].map((p) => p.catch(() => undefined)));
    await Promise.all([...this.#waking.values()].map((w) => w.promise.catch(() => undefined)));
  }
}

export { formatDuration, parseSuspendAfter };
