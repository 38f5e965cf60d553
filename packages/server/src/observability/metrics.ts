import { Counter, Gauge, Histogram, Registry, type Metric } from "prom-client";

/** Gateway pool figures of one (instance, database, role) pool (gateway/pools.ts). */
export interface PoolFigures {
  readonly databaseId: string;
  readonly inUse: number;
  readonly idle: number;
  readonly waiting: number;
}

/** What ccpd's own gauges read at scrape time (nothing is kept up to date per request). */
export interface MetricSources {
  gatewayPools(): readonly PoolFigures[];
  /** Open wire sessions per database id. */
  wireSessions(): ReadonlyMap<string, number>;
}

/** Seconds: requests are sub-millisecond to minutes (restores). */
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const OPERATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** One (method, route, status)'s requests: a count, a sum of seconds, a count per bucket (not cumulative). */
class HttpChild {
  count = 0;
  sum = 0;
  readonly buckets = new Float64Array(HTTP_BUCKETS.length);
  constructor(readonly labels: { readonly method: string; readonly route: string; readonly status: string }) {}

  observe(seconds: number): void {
    if (!Number.isFinite(seconds)) return; // as prom-client, which refuses one
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < HTTP_BUCKETS.length; i++) {
      if (seconds <= (HTTP_BUCKETS[i] as number)) {
        (this.buckets[i] as number)++;
        return;
      }
    }
  }
}

/**
 * ccpd_http_requests_total and ccpd_http_request_duration_seconds, counted by
 * hand and handed to prom-client's registry as two metric objects it formats
 * like its own (the shape its Counter and Histogram return from get()). Per
 * request this is two additions and a bucket search; prom-client's own
 * children hash their labels, validate them and key buckets by the bound's
 * text on every observation: 2.2% of ccpd's CPU under gateway load in a CPU
 * profile, against a 3% budget for all of observability.
 */
class HttpFamilies {
  readonly #children: HttpChild[] = [];

  constructor(registry: Registry) {
    const children = this.#children;
    // prom-client types registerMetric's argument as one of its own classes; the registry itself reads name, help,
    // type, aggregator and get() (getMetricsAsString, getMetricsAsJSON), which these have.
    const family = (name: string, help: string, type: "counter" | "histogram", values: () => { value: number; labels: Record<string, string | number>; metricName?: string; exemplar?: null }[]) =>
      ({ name, help, type, aggregator: "sum", get: async () => ({ name, help, type, aggregator: "sum", values: values() }), reset: () => undefined }) as unknown as Metric;
    registry.registerMetric(
      family("ccpd_http_requests_total", "HTTP requests answered by ccpd, by method, route (the route pattern, not the URL) and status code", "counter", () =>
        children.map((c) => ({ value: c.count, labels: c.labels })),
      ),
    );
    const duration = "ccpd_http_request_duration_seconds";
    registry.registerMetric(
      family(duration, "Time from a request's arrival to its answer, by method, route and status code", "histogram", () =>
        children.flatMap((c) => {
          let cumulative = 0;
          return [
            ...HTTP_BUCKETS.map((le, i) => ({ value: (cumulative += c.buckets[i] as number), labels: { le, ...c.labels }, metricName: `${duration}_bucket`, exemplar: null })),
            { value: c.count, labels: { le: "+Inf", ...c.labels }, metricName: `${duration}_bucket`, exemplar: null },
            { value: c.sum, labels: c.labels, metricName: `${duration}_sum` },
            { value: c.count, labels: c.labels, metricName: `${duration}_count` },
          ];
        }),
      ),
    );
  }

  child(method: string, route: string, status: number): HttpChild {
    const child = new HttpChild({ method, route, status: String(status) });
    this.#children.push(child);
    return child;
  }
}

/**
 * ccpd's own metric families (prom-client), in one registry that `/metrics`
 * serves together with the per-database families (database-metrics.ts).
 * Per request: one observation on a child cached per (method, route, status)
 * of the HTTP families (HttpFamilies), no label object, no prom-client call.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #http: HttpFamilies;
  /** method → route → status → children. */
  readonly #children = new Map<string, Map<string, Map<number, HttpChild>>>();
  readonly #created: Counter;
  readonly #createFailures: Counter;
  readonly #createDuration: Histogram;
  readonly #destroyed: Counter;
  readonly #wakes: Counter;
  readonly #wakeDuration: Histogram;
  readonly #suspends: Counter;
  readonly #suspendDuration: Histogram;
  readonly #backups: Counter<"kind" | "outcome">;
  readonly #backupDuration: Histogram<"kind" | "outcome">;
  readonly #restarts: Counter<"database_id">;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    this.#http = new HttpFamilies(this.registry);
    new Gauge({
      name: "ccpd_gateway_pool_connections",
      help: "Server connections of the SQL-over-HTTP gateway's pools, by database and state (in_use, idle, waiting: requests queued for one)",
      labelNames: ["database_id", "state"],
      registers,
      collect() {
        this.reset();
        const sums = new Map<string, [number, number, number]>();
        for (const p of sources.gatewayPools()) {
          const s = sums.get(p.databaseId) ?? [0, 0, 0];
          s[0] += p.inUse;
          s[1] += p.idle;
          s[2] += p.waiting;
          sums.set(p.databaseId, s);
        }
        for (const [id, [inUse, idle, waiting]] of sums) {
          this.labels(id, "in_use").set(inUse);
          this.labels(id, "idle").set(idle);
          this.labels(id, "waiting").set(waiting);
        }
      },
    });
    new Gauge({
      name: "ccpd_wire_sessions",
      help: "Open client sessions through the wire (Postgres protocol) endpoint, by database",
      labelNames: ["database_id"],
      registers,
      collect() {
        this.reset();
        for (const [id, n] of sources.wireSessions()) this.labels(id).set(n);
      },
    });
    this.#created = new Counter({ name: "ccpd_databases_created_total", help: "Databases created (create, provision, point-in-time restore)", registers });
    this.#createFailures = new Counter({ name: "ccpd_database_create_failures_total", help: "Creates that failed and were undone", registers });
    this.#createDuration = new Histogram({ name: "ccpd_database_create_duration_seconds", help: "Time a successful create took", buckets: OPERATION_BUCKETS, registers });
    this.#destroyed = new Counter({ name: "ccpd_databases_destroyed_total", help: "Databases destroyed", registers });
    this.#wakes = new Counter({ name: "ccpd_instance_wakes_total", help: "Suspended instances woken (by a connection, a request or an admin action)", registers });
    this.#wakeDuration = new Histogram({ name: "ccpd_instance_wake_duration_seconds", help: "Time from a wake's start to the instance accepting connections", buckets: OPERATION_BUCKETS, registers });
    this.#suspends = new Counter({ name: "ccpd_instance_suspends_total", help: "Idle instances suspended", registers });
    this.#suspendDuration = new Histogram({ name: "ccpd_instance_suspend_duration_seconds", help: "Time a suspend (clean stop) took", buckets: OPERATION_BUCKETS, registers });
    this.#backups = new Counter({
      name: "ccpd_backups_total",
      help: "Base backups by kind (manual, scheduled) and outcome (success, failure)",
      labelNames: ["kind", "outcome"],
      registers,
    });
    this.#backupDuration = new Histogram({
      name: "ccpd_backup_duration_seconds",
      help: "Time a base backup took, by kind and outcome",
      labelNames: ["kind", "outcome"],
      buckets: OPERATION_BUCKETS,
      registers,
    });
    this.#restarts = new Counter({
      name: "ccpd_instance_restarts_total",
      help: "Times the supervisor restarted an instance's postgres after it died, since ccpd started",
      labelNames: ["database_id"],
      registers,
    });
  }

  /** The hot path of one route: `(status, seconds)` of each answered request, children cached per status. */
  httpObserver(method: string, route: string): (status: number, seconds: number) => void {
    const byStatus = new Map<number, HttpChild>();
    return (status, seconds) => {
      let child = byStatus.get(status);
      if (!child) byStatus.set(status, (child = this.#http.child(method, route, status)));
      child.observe(seconds);
    };
  }

  /** One answered HTTP request (requests no route matched). */
  observeHttp(method: string, route: string, status: number, seconds: number): void {
    let byRoute = this.#children.get(method);
    if (!byRoute) this.#children.set(method, (byRoute = new Map()));
    let byStatus = byRoute.get(route);
    if (!byStatus) byRoute.set(route, (byStatus = new Map()));
    let child = byStatus.get(status);
    if (!child) byStatus.set(status, (child = this.#http.child(method, route, status)));
    child.observe(seconds);
  }

  databaseCreated(seconds: number): void {
    this.#created.inc();
    this.#createDuration.observe(seconds);
  }

  databaseCreateFailed(): void {
    this.#createFailures.inc();
  }

  databaseDestroyed(): void {
    this.#destroyed.inc();
  }

  /**
   * Sleep/wake: the instance lifecycle layer (runtime/instances, DESIGN.md)
   * calls these when it wakes or suspends an instance. Nothing suspends
   * instances yet, so both stay at 0 until that layer lands.
   */
  instanceWoken(seconds: number): void {
    this.#wakes.inc();
    this.#wakeDuration.observe(seconds);
  }

  instanceSuspended(seconds: number): void {
    this.#suspends.inc();
    this.#suspendDuration.observe(seconds);
  }

  backupFinished(kind: string, ok: boolean, seconds: number): void {
    const outcome = ok ? "success" : "failure";
    this.#backups.labels(kind, outcome).inc();
    this.#backupDuration.labels(kind, outcome).observe(seconds);
  }

  instanceRestarted(databaseId: string): void {
    this.#restarts.labels(databaseId).inc();
  }

  /** Prometheus text format of every family. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
