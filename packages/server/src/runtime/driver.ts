import type { EventEmitter } from "node:events";

/**
 * The runtime-driver interface of DESIGN.md: how an instance's Postgres server is
 * provisioned, started, suspended, stopped and destroyed. `process` is the only
 * driver today; `sandbox`, `microvm` and `kubernetes` come later behind this same
 * interface. Callers never reach a driver directly: they go through
 * `runtime/instances.ts` (wake, leases, autosuspend).
 */

/** How ccpd reaches an instance's Postgres: a local unix socket, or TCP (with TLS for anything not on this host). */
export type InstanceTransport =
  | { readonly kind: "unix"; readonly socketDir: string; readonly port: number }
  | { readonly kind: "tcp"; readonly host: string; readonly port: number; readonly tls: { readonly ca?: string; readonly servername?: string } | false };

/** The superuser role ccp uses for platform work; never reachable by tenants. */
export interface AdminCredentials {
  readonly user: string;
  /** Absent where the transport authenticates by itself (peer authentication on a local socket). */
  readonly password?: string;
}

export interface InstanceEndpoint {
  readonly transport: InstanceTransport;
  readonly admin: AdminCredentials;
}

/**
 * absent: no storage; stopped: storage, no server (and not asleep: nothing wakes it);
 * suspended: asleep, woken on demand; starting: coming up (first start, wake, restart);
 * running: accepts connections; failed: could not be (re)started.
 */
export type InstanceState = "absent" | "stopped" | "suspended" | "starting" | "running" | "failed";

export interface RestartEvent {
  readonly id: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly at: Date;
}

/** One event source per driver: what happened to an instance's server. */
export interface DriverEvents {
  /** The server exited without being asked to (the driver restarts it). */
  exit: [RestartEvent];
  /** A restart after an exit succeeded (`error` undefined) or failed (retried with back-off). */
  restart: [{ readonly id: string; readonly error?: Error }];
  state: [{ readonly id: string; readonly state: InstanceState }];
}

/** OS owner of files a driver's instances read (where that applies). */
export interface FileOwner {
  readonly uid: number;
  readonly gid: number;
}

/**
 * The data-directory work of backups, behind the driver: base-backup files are
 * read out of it, a restore is unpacked into it, and the instance archives its WAL
 * to `walArchiveDir`. A remote driver maps these onto its own volumes.
 */
export interface InstanceStorage {
  /** Directory holding the instance's data files (read by a base backup, replaced by a restore). */
  dataDir(id: string): string;
  /** Make storage for an instance a restore fills (no server, no data yet). */
  prepareEmpty(id: string): void;
  /** Who must own files written into an instance's data dir (undefined: whoever ccpd runs as); each instance may have its own. */
  ownerOf(id: string): FileOwner | undefined;
}

/**
 * Resource limits of one instance (#15). An absent field is unlimited. The driver
 * enforces them with whatever the host has (cgroup v2 or v1, a filesystem image)
 * and derives the instance's Postgres settings from them (runtime/limits.ts).
 */
export interface InstanceLimits {
  /** Hard memory limit in bytes; a soft limit (reclaimed first) is set below it. */
  readonly memoryBytes?: number;
  /** CPU quota in cores (0.5: half of one core). */
  readonly cpu?: number;
  /** Storage for data and WAL, in bytes. */
  readonly storageBytes?: number;
  /** Client connections the tenant may hold at once. */
  readonly connections?: number;
  /** Processes (postmaster, backends, workers). */
  readonly pids?: number;
  /** Read and write bandwidth in bytes/s (cgroup v2 only). */
  readonly ioBytesPerSec?: number;
}

/** What an instance uses now, as the enforcement mechanism counts it (absent: not measurable here). */
export interface InstanceUsage {
  readonly memoryBytes?: number;
  readonly cpuSeconds?: number;
  readonly pids?: number;
  readonly storageBytes?: number;
}

/** Which limits a change applied at once and which take effect at the instance's next start. */
export interface LimitsApplied {
  readonly live: readonly (keyof InstanceLimits)[];
  readonly nextStart: readonly (keyof InstanceLimits)[];
}

/** One isolation mechanism and whether it is in force on this host, with why not. */
export interface IsolationFeature {
  readonly name: string;
  readonly enforced: boolean;
  readonly detail: string;
}

export interface StartOptions {
  /** Settings for this start only (recovery from a backup). */
  readonly settings?: Record<string, string>;
  readonly timeoutMs?: number;
  /**
   * A recovery start: the directory of archived WAL to replay from. The driver
   * sets restore_command itself (a sandboxed server has no shell, and may not
   * read another database's archive).
   */
  readonly restoreWalFrom?: string;
}

export interface RuntimeDriver {
  readonly name: string;
  /** Postgres version instances of this driver run, e.g. "18.4". */
  readonly pgVersion: string;
  readonly events: EventEmitter<DriverEvents>;
  readonly storage: InstanceStorage;
  /**
   * Provision a new instance from the template. A driver with pre-started servers
   * hands one over already running (then `start` returns at once); it never carried
   * another database.
   */
  create(id: string, limits?: InstanceLimits): Promise<void>;
  /** Record an instance's limits (kept across ccpd restarts) and apply what the kernel allows live. */
  setLimits(id: string, limits: InstanceLimits): Promise<LimitsApplied>;
  /** Current usage against the limits. */
  usage(id: string): Promise<InstanceUsage>;
  /** The isolation in force for this driver's instances on this host (what is not, and why). */
  isolation(): readonly IsolationFeature[];
  /** Start the instance (or adopt/replace a stale server) and wait until it accepts connections. */
  start(id: string, once?: StartOptions): Promise<InstanceEndpoint>;
  /**
   * Stop cleanly and remember it is asleep (state `suspended`, kept across ccpd
   * restarts). The caller (instances.ts) has checkpointed and archived first.
   */
  suspend(id: string): Promise<void>;
  /** Stop cleanly; the data stays. */
  stop(id: string): Promise<void>;
  /** Stop and remove everything the instance had. Idempotent. */
  destroy(id: string): Promise<void>;
  state(id: string): Promise<InstanceState>;
  /** Where the instance listens (valid while it runs; stable for the process driver). */
  endpoint(id: string): InstanceEndpoint;
  /** IDs of every instance that has storage on this runtime (for orphan reconciliation). */
  list(): Promise<string[]>;
  /** Stop every running instance (ccpd shutdown). */
  shutdown(): Promise<void>;
}
