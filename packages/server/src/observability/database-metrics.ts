import { Counter, Gauge, type Registry } from "prom-client";
import type { Catalog, DatabaseRow } from "../catalog/catalog.js";
import { ADMIN_APPLICATION_NAME, withAdmin } from "../databases/admin-connection.js";
import type { InstanceEndpoint, RuntimeDriver } from "../runtime/driver.js";

/** pg_stat_database figures of one Postgres database inside an instance. */
export interface DatabaseStats {
  readonly datname: string;
  readonly numbackends: number;
  readonly xact_commit: number;
  readonly xact_rollback: number;
  readonly blks_read: number;
  readonly blks_hit: number;
  readonly tup_returned: number;
  readonly tup_fetched: number;
  readonly tup_inserted: number;
  readonly tup_updated: number;
  readonly tup_deleted: number;
  readonly conflicts: number;
  readonly temp_files: number;
  readonly temp_bytes: number;
  readonly deadlocks: number;
  readonly size_bytes: number;
}

/** One reading of a running instance, as ccp's admin role. */
export interface InstanceSnapshot {
  /** ms since the epoch when it was read. */
  readonly at: number;
  /** Tenant databases only: `postgres` (ccp's own) and templates are left out. */
  readonly databases: readonly DatabaseStats[];
  /** Client sessions by datname and state; ccp's admin sessions are left out. */
  readonly activity: readonly { datname: string; state: string; count: number }[];
  readonly maxConnections: number;
  readonly startTime: number;
  readonly archivedCount: number;
  readonly failedCount: number;
  /** Seconds since the last WAL segment was archived; null when none was yet. */
  readonly lastArchiveAgeSeconds: number | null;
  /** WAL written but not yet archived, in bytes (0 when archiving is off or caught up). */
  readonly archiveLagBytes: number;
}

/** Headline figures for `ccp db status`. */
export interface Headline {
  /** Transactions (commits + rollbacks) per second over the last minute, or over what was seen of it; null without two readings. */
  readonly tps: number | null;
  /** Over the instance's tenant databases since their statistics began; null before any block was read. */
  readonly cache_hit_rate: number | null;
  readonly wal_archive_lag_bytes: number | null;
  readonly last_archived_age_seconds: number | null;
}

/** The `state` values postgres_exporter reports for pg_stat_activity_count (zeros included). */
const ACTIVITY_STATES = ["active", "idle", "idle in transaction", "idle in transaction (aborted)", "fastpath function call", "disabled"] as const;

const STATS_SQL = `
SELECT d.datname, s.numbackends, s.xact_commit::float8, s.xact_rollback::float8, s.blks_read::float8, s.blks_hit::float8,
       s.tup_returned::float8, s.tup_fetched::float8, s.tup_inserted::float8, s.tup_updated::float8, s.tup_deleted::float8,
       s.conflicts::float8, s.temp_files::float8, s.temp_bytes::float8, s.deadlocks::float8, pg_database_size(d.oid)::float8 AS size_bytes
  FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid
 WHERE NOT d.datistemplate AND d.datname <> 'postgres'
 ORDER BY d.datname`;

const ACTIVITY_SQL = `
SELECT datname, coalesce(state, 'unknown') AS state, count(*)::int AS count
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND datname IS NOT NULL AND datname <> 'postgres' AND usename IS NOT NULL AND application_name <> $1
 GROUP BY 1, 2`;

// Archive lag: complete segments waiting for the archiver (.ready files) plus what is written of the current one.
const SERVER_SQL = `
SELECT current_setting('max_connections')::int AS max_connections,
       extract(epoch FROM pg_postmaster_start_time())::float8 AS start_time,
       a.archived_count::float8, a.failed_count::float8,
       extract(epoch FROM now() - a.last_archived_time)::float8 AS last_archive_age,
       CASE WHEN current_setting('archive_mode') = 'off' THEN 0
            ELSE (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') * pg_size_bytes(current_setting('wal_segment_size'))
                 + (SELECT file_offset FROM pg_walfile_name_offset(pg_current_wal_lsn()))
       END::float8 AS archive_lag
  FROM pg_stat_archiver a`;

async function readInstance(endpoint: InstanceEndpoint, timeoutMs: number): Promise<InstanceSnapshot> {
  return withAdmin(
    endpoint,
    "postgres",
    async (client) => {
      const stats = await client.query<DatabaseStats>(STATS_SQL);
      const activity = await client.query<{ datname: string; state: string; count: number }>(ACTIVITY_SQL, [ADMIN_APPLICATION_NAME]);
      const server = await client.query<{
        max_connections: number;
        start_time: number;
        archived_count: number;
        failed_count: number;
        last_archive_age: number | null;
        archive_lag: number;
      }>(SERVER_SQL);
      const s = server.rows[0];
      if (!s) throw new Error("pg_stat_archiver returned no row");
      return {
        at: Date.now(),
        databases: stats.rows,
        activity: activity.rows,
        maxConnections: s.max_connections,
        startTime: s.start_time,
        archivedCount: s.archived_count,
        failedCount: s.failed_count,
        lastArchiveAgeSeconds: s.last_archive_age,
        archiveLagBytes: s.archive_lag,
      };
    },
    timeoutMs,
  );
}

export interface DatabaseMetricsOptions {
  readonly catalog: Catalog;
  readonly driver: RuntimeDriver;
  readonly registry: Registry;
  /** A reading younger than this is served from memory: scrapes stay cheap (default 5 s). */
  readonly cacheMs?: number;
  /** Bound on reading one instance (default 2 s). */
  readonly timeoutMs?: number;
  /** Readings of every running instance in the background, for TPS over a minute (default 15 s; 0: only on demand). */
  readonly sampleEveryMs?: number;
  readonly log?: { warn(msg: string): void };
}

interface Entry {
  snapshot: InstanceSnapshot | undefined;
  /** In-flight read, shared by everyone asking meanwhile. */
  reading: Promise<InstanceSnapshot | undefined> | undefined;
  /** (time, commits + rollbacks) over the last two minutes, oldest first. */
  readonly history: { at: number; xacts: number }[];
}

const HISTORY_MS = 120_000;
const TPS_WINDOW_MS = 60_000;

/**
 * Per-database metric families with postgres_exporter's names, labelled by
 * ccp's database id and name. Only instances that are running right now are
 * read (the runtime's state, never a start): collecting never wakes a
 * database. Readings are cached for `cacheMs`, so a scrape costs at most one
 * short admin connection per running instance and usually none.
 */
export class DatabaseMetrics {
  readonly #o: DatabaseMetricsOptions;
  readonly #entries = new Map<string, Entry>();
  #filling: Promise<void> | undefined;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #families: {
    up: Gauge;
    info: Gauge;
    gauges: Map<keyof DatabaseStats, Gauge>;
    counters: Map<keyof DatabaseStats, Counter>;
    activity: Gauge;
    maxConnections: Gauge;
    startTime: Gauge;
    archived: Counter;
    failed: Counter;
    archiveAge: Gauge;
    archiveLag: Gauge;
  };

  constructor(options: DatabaseMetricsOptions) {
    this.#o = Object.freeze({ ...options });
    const registers = [options.registry];
    const ensure = () => this.#fill();
    const base = ["database_id", "name"] as const;
    const perDb = [...base, "datname"] as const;
    const gauge = (name: string, help: string, labelNames: readonly string[] = base) => new Gauge({ name, help, labelNames, registers, collect: ensure });
    const counter = (name: string, help: string, labelNames: readonly string[] = base) => new Counter({ name, help, labelNames, registers, collect: ensure });
    const COUNTERS: [keyof DatabaseStats, string][] = [
      ["xact_commit", "Transactions committed"],
      ["xact_rollback", "Transactions rolled back"],
      ["blks_read", "Disk blocks read"],
      ["blks_hit", "Disk blocks found in shared buffers"],
      ["tup_returned", "Rows returned by queries"],
      ["tup_fetched", "Rows fetched by queries"],
      ["tup_inserted", "Rows inserted"],
      ["tup_updated", "Rows updated"],
      ["tup_deleted", "Rows deleted"],
      ["conflicts", "Queries cancelled by recovery conflicts"],
      ["temp_files", "Temporary files created"],
      ["temp_bytes", "Bytes written to temporary files"],
      ["deadlocks", "Deadlocks detected"],
    ];
    this.#families = {
      up: gauge("pg_up", "1 when the database's Postgres is running and answered the last reading, 0 otherwise (stopped, suspended, unreachable)"),
      info: gauge("ccp_database_info", "1 for every database in the catalog, with its status and Postgres version", [...base, "status", "pg_version"]),
      gauges: new Map([
        ["numbackends", gauge("pg_stat_database_numbackends", "Backends connected to this Postgres database", perDb)],
        ["size_bytes", gauge("pg_database_size_bytes", "Disk space used by the Postgres database (pg_database_size)", perDb)],
      ]),
      counters: new Map(COUNTERS.map(([k, help]) => [k, counter(`pg_stat_database_${k}`, `${help} (pg_stat_database)`, perDb)])),
      activity: gauge("pg_stat_activity_count", "Client sessions by Postgres database and state (ccp's own admin sessions not counted)", [...perDb, "state"]),
      maxConnections: gauge("pg_settings_max_connections", "max_connections: the instance's connection limit"),
      startTime: gauge("pg_postmaster_start_time_seconds", "When the instance's postmaster started (Unix time)"),
      archived: counter("pg_stat_archiver_archived_count", "WAL segments archived to the backup store since the statistics were reset"),
      failed: counter("pg_stat_archiver_failed_count", "Failed attempts to archive a WAL segment"),
      archiveAge: gauge("pg_stat_archiver_last_archive_age", "Seconds since the last WAL segment was archived"),
      archiveLag: gauge("ccp_wal_archive_lag_bytes", "WAL written but not yet archived to the backup store (what a disk loss would cost)"),
    };
    const every = options.sampleEveryMs ?? 15_000;
    if (every > 0) {
      this.#timer = setInterval(() => void this.#sampleAll(), every);
      this.#timer.unref();
    }
  }

  /** The reading of one database: cached when younger than cacheMs; undefined when it is not running (never started here). */
  async snapshot(row: DatabaseRow): Promise<InstanceSnapshot | undefined> {
    // Never wakes a suspended database: collecting is not activity.
    if (row.status !== "ready" || (await this.#o.driver.state(row.id)) !== "running") return undefined;
    let entry = this.#entries.get(row.id);
    if (!entry) this.#entries.set(row.id, (entry = { snapshot: undefined, reading: undefined, history: [] }));
    const e = entry;
    if (e.snapshot && Date.now() - e.snapshot.at < (this.#o.cacheMs ?? 5_000)) return e.snapshot;
    e.reading ??= readInstance(this.#o.driver.endpoint(row.id), this.#o.timeoutMs ?? 2_000)
      .then(
        (snap) => {
          e.snapshot = snap;
          const xacts = snap.databases.reduce((n, d) => n + d.xact_commit + d.xact_rollback, 0);
          e.history.push({ at: snap.at, xacts });
          while (e.history.length > 0 && (e.history[0] as { at: number }).at < snap.at - HISTORY_MS) e.history.shift();
          return snap;
        },
        (err: Error) => {
          this.#o.log?.warn(`metrics: reading ${row.id} failed: ${err.message}`);
          return undefined;
        },
      )
      .finally(() => (e.reading = undefined));
    return e.reading;
  }

  /** Headline figures of a database for `ccp db status` (a fresh reading when the cached one is old). */
  async headline(row: DatabaseRow): Promise<Headline | undefined> {
    const snap = await this.snapshot(row);
    if (!snap) return undefined;
    const history = this.#entries.get(row.id)?.history ?? [];
    const last = history[history.length - 1];
    // The oldest reading within the last minute (or the oldest there is, when younger).
    const first = history.find((h) => h.at >= (last?.at ?? 0) - TPS_WINDOW_MS);
    const tps = last && first && last.at - first.at >= 1_000 ? Math.max(0, last.xacts - first.xacts) / ((last.at - first.at) / 1000) : null;
    const hit = snap.databases.reduce((n, d) => n + d.blks_hit, 0);
    const read = snap.databases.reduce((n, d) => n + d.blks_read, 0);
    return {
      tps: tps === null ? null : Math.round(tps * 100) / 100,
      cache_hit_rate: hit + read === 0 ? null : Math.round((hit / (hit + read)) * 10_000) / 10_000,
      wal_archive_lag_bytes: snap.archiveLagBytes,
      last_archived_age_seconds: snap.lastArchiveAgeSeconds === null ? null : Math.floor(snap.lastArchiveAgeSeconds),
    };
  }

  /** A database is gone: forget its readings. */
  forget(id: string): void {
    this.#entries.delete(id);
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  async #sampleAll(): Promise<void> {
    try {
      await Promise.all((await this.#o.catalog.databases.list()).map((row) => this.snapshot(row)));
    } catch (err) {
      this.#o.log?.warn(`metrics: sampling failed: ${(err as Error).message}`);
    }
  }

  /** Every family's collect() waits for this one fill per scrape; values are set before it resolves. */
  #fill(): Promise<void> {
    this.#filling ??= (async () => {
      const rows = await this.#o.catalog.databases.list();
      const snaps = await Promise.all(rows.map(async (row) => [row, await this.snapshot(row)] as const));
      const f = this.#families;
      for (const g of [f.up, f.info, ...f.gauges.values(), f.activity, f.maxConnections, f.startTime, f.archiveAge, f.archiveLag]) g.reset();
      for (const c of [...f.counters.values(), f.archived, f.failed]) c.reset();
      const live = new Set(rows.map((r) => r.id));
      for (const id of this.#entries.keys()) if (!live.has(id)) this.#entries.delete(id);
      for (const [row, snap] of snaps) {
        const id = row.id;
        const name = row.name;
        f.info.labels(id, name, row.status, row.pg_version).set(1);
        f.up.labels(id, name).set(snap ? 1 : 0);
        if (!snap) continue;
        for (const d of snap.databases) {
          for (const [k, g] of f.gauges) g.labels(id, name, d.datname).set(d[k] as number);
          for (const [k, c] of f.counters) c.labels(id, name, d.datname).inc(d[k] as number);
          for (const state of ACTIVITY_STATES) f.activity.labels(id, name, d.datname, state).set(0);
        }
        for (const a of snap.activity) f.activity.labels(id, name, a.datname, a.state).set(a.count);
        f.maxConnections.labels(id, name).set(snap.maxConnections);
        f.startTime.labels(id, name).set(snap.startTime);
        f.archived.labels(id, name).inc(snap.archivedCount);
        f.failed.labels(id, name).inc(snap.failedCount);
        if (snap.lastArchiveAgeSeconds !== null) f.archiveAge.labels(id, name).set(snap.lastArchiveAgeSeconds);
        f.archiveLag.labels(id, name).set(snap.archiveLagBytes);
      }
    })().finally(() => (this.#filling = undefined));
    return this.#filling;
  }
}
