/**
 * The runtime-driver interface of DESIGN.md: how an instance's Postgres server is
 * provisioned, started, stopped and destroyed. `process` is the only driver today;
 * `microvm` and `kubernetes` come later behind this same interface.
 */
export interface InstanceEndpoint {
  /** Directory holding the unix socket (`host` for libpq / node-postgres). */
  readonly socketDir: string;
  readonly port: number;
  /** The superuser role ccp uses for platform work; never reachable by tenants. */
  readonly adminUser: string;
}

export type InstanceState = "running" | "stopped" | "absent";

export interface RestartEvent {
  readonly id: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly at: Date;
}

export interface RuntimeDriver {
  readonly name: string;
  /** Postgres version instances of this driver run, e.g. "18.4". */
  readonly pgVersion: string;
  /** Provision storage for a new instance (from the pre-initialised template). */
  create(id: string): Promise<void>;
  /**
   * Start the instance (or adopt/replace a stale server) and wait until it accepts
   * connections. `once`: settings and a start-up timeout for this start only
   * (recovery from a backup).
   */
  start(id: string, once?: { settings?: Record<string, string>; timeoutMs?: number }): Promise<InstanceEndpoint>;
  /** Stop cleanly; the data stays. */
  stop(id: string): Promise<void>;
  /** Stop and remove everything the instance had. Idempotent. */
  destroy(id: string): Promise<void>;
  state(id: string): InstanceState;
  endpoint(id: string): InstanceEndpoint;
  /** IDs of every instance that has storage on this runtime (for orphan reconciliation). */
  list(): Promise<string[]>;
  /** Stop every running instance (ccpd shutdown). */
  shutdown(): Promise<void>;
}
