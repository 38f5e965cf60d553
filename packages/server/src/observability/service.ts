import type { AdminAuth } from "../api/admin-auth.js";
import type { Catalog, DatabaseRow } from "../catalog/catalog.js";
import type { BackupObserver } from "../backups/service.js";
import type { DatabaseObserver } from "../databases/service.js";
import { CcpError, isCcpError } from "../errors.js";
import { bearerToken, hashSecret, newMetricsToken, secretMatches } from "../ids.js";
import type { RuntimeDriver } from "../runtime/driver.js";
import { LOG_LIMITS, pruneLogs } from "../runtime/process/process-driver.js";
import { DatabaseMetrics, type Headline } from "./database-metrics.js";
import { statementInsights, resetInsights, type InsightSort, type StatementInsight } from "./insights.js";
import { PlatformEvents } from "./events.js";
import { LogReader, type LogQuery } from "./logs.js";
import { Metrics, type MetricSources } from "./metrics.js";

export interface ObservabilityOptions {
  readonly catalog: Catalog;
  readonly driver: RuntimeDriver & { logDir(id: string): string };
  readonly adminAuth: AdminAuth;
  readonly sources: MetricSources;
  /** Serve /metrics and count HTTP requests (default true). */
  readonly enabled: boolean;
  /** Per-database readings are reused for this long (default 5 s). */
  readonly cacheMs?: number;
  /** Background readings for TPS (default 15 s; 0: off). */
  readonly sampleEveryMs?: number;
  readonly log: { warn(msg: string): void };
}

/** Metrics, logs and query insights: what the observability routes call. */
export class Observability {
  readonly enabled: boolean;
  readonly metrics: Metrics;
  readonly databaseMetrics: DatabaseMetrics;
  readonly events: PlatformEvents;
  readonly #o: ObservabilityOptions;
  readonly #pruneTimer: NodeJS.Timeout;
  #tokenHashes: string[] = [];
  #loadedAt = 0;

  constructor(options: ObservabilityOptions) {
    this.#o = Object.freeze({ ...options });
    this.enabled = options.enabled;
    this.metrics = new Metrics(options.sources);
    this.events = new PlatformEvents(options.catalog, options.log);
    // Platform events are kept as long as Postgres's own log lines (LOG_LIMITS), and go with their database;
    // Postgres rotates its files but never removes them, so ccpd does, hourly and at each start and read.
    const prune = async () => {
      try {
        await options.catalog.events.prune(LOG_LIMITS.maxAgeDays);
        for (const id of await options.driver.list()) pruneLogs(options.driver.logDir(id));
      } catch (err) {
        options.log.warn(`pruning logs failed: ${(err as Error).message}`);
      }
    };
    void prune();
    this.#pruneTimer = setInterval(() => void prune(), 3_600_000);
    this.#pruneTimer.unref();
    this.databaseMetrics = new DatabaseMetrics({
      catalog: options.catalog,
      driver: options.driver,
      registry: this.metrics.registry,
      ...(options.cacheMs === undefined ? {} : { cacheMs: options.cacheMs }),
      ...(options.sampleEveryMs === undefined ? {} : { sampleEveryMs: options.sampleEveryMs }),
      log: options.log,
    });
  }

  close(): void {
    this.databaseMetrics.close();
    clearInterval(this.#pruneTimer);
  }

  /** A new read-only token for GET /metrics; shown once, stored hashed. */
  async issueMetricsToken(): Promise<string> {
    const token = newMetricsToken();
    await this.#o.catalog.metricsTokens.add(hashSecret(token));
    this.#tokenHashes.push(hashSecret(token));
    return token;
  }

  async checkAdmin(header: string | undefined): Promise<void> {
    await this.#o.adminAuth.check(header);
  }

  /** GET /metrics: an admin key or a metrics token. */
  async checkScraper(header: string | undefined): Promise<void> {
    const token = bearerToken(header);
    if (token?.startsWith("ccpm_")) {
      let ok = this.#tokenHashes.some((h) => secretMatches(token, h));
      if (!ok && Date.now() - this.#loadedAt > 1_000) {
        this.#tokenHashes = await this.#o.catalog.metricsTokens.hashes();
        this.#loadedAt = Date.now();
        ok = this.#tokenHashes.some((h) => secretMatches(token, h));
      }
      if (ok) return;
      throw new CcpError("unauthorized", "The metrics token is not valid for this ccpd.", { hint: "Issue one with `ccp server metrics-token`." });
    }
    await this.#o.adminAuth.check(header);
  }

  /**
   * Logs and insights of one database: the admin key, or that database's own
   * HTTP token (a tenant sees its own database and nothing else).
   */
  async authorizeDatabase(ref: string, header: string | undefined): Promise<DatabaseRow> {
    try {
      await this.#o.adminAuth.check(header);
      const row = await this.#o.catalog.databases.find(ref);
      if (!row) throw new CcpError("not_found", `No database with id or name "${ref}".`, { hint: "List your databases with `ccp db list`." });
      return row;
    } catch (err) {
      if (!isCcpError(err) || err.code !== "unauthorized") throw err;
      const token = bearerToken(header);
      const row = token ? await this.#o.catalog.databases.find(ref) : undefined;
      if (token && row && secretMatches(token, row.token_hash)) return row;
      throw new CcpError("unauthorized", "Send the admin API key, or this database's HTTP token.", {
        hint: "The CLI sends the admin key from your ccp config; a database token (in .cluster/config.json) reads only its own database.",
      });
    }
  }

  logReader(row: DatabaseRow, query: LogQuery): LogReader {
    return new LogReader({ dir: this.#o.driver.logDir(row.id), catalog: this.#o.catalog, databaseId: row.id, query });
  }

  async #runningEndpoint(row: DatabaseRow) {
    if (row.status !== "ready" || (await this.#o.driver.state(row.id)) !== "running") {
      throw new CcpError("not_ready", `Database ${row.id} is not running (${row.status}); its statement statistics live in its server.`, { hint: "Retry shortly." });
    }
    return this.#o.driver.endpoint(row.id);
  }

  async insights(row: DatabaseRow, sort: InsightSort, limit: number): Promise<StatementInsight[]> {
    return statementInsights(await this.#runningEndpoint(row), sort, limit);
  }

  async resetInsights(row: DatabaseRow): Promise<void> {
    await resetInsights(await this.#runningEndpoint(row));
  }

  /** Events and metrics of creates, destroys and credential changes (DatabaseService). */
  databaseObserver(): DatabaseObserver {
    return {
      created: (id, seconds, from) => {
        this.metrics.databaseCreated(seconds);
        void this.events.record(id, "created", from ? { from } : {});
      },
      createFailed: () => this.metrics.databaseCreateFailed(),
      destroyed: (id) => {
        this.metrics.databaseDestroyed();
        this.databaseMetrics.forget(id);
      },
      passwordChanged: (id) => void this.events.record(id, "password_changed"),
      tokenRotated: (id) => void this.events.record(id, "token_rotated"),
    };
  }

  /** Events and metrics of backups and restores (BackupService). */
  backupObserver(): BackupObserver {
    return {
      backupFinished: (id, backupId, kind, error, seconds) => {
        this.metrics.backupFinished(kind, !error, seconds);
        void this.events.record(id, error ? "backup_failed" : "backup_taken", error ? { backup_id: backupId, kind, error: error.message } : { backup_id: backupId, kind });
      },
      restored: (id, backupId) => void this.events.record(id, "restored", { backup_id: backupId }),
    };
  }

  /** Sleep/wake: server.ts forwards runtime/instances' "wake" and "suspend" events here (metrics and the log stream). */
  instanceWoken(id: string, seconds: number): void {
    this.metrics.instanceWoken(seconds);
    void this.events.record(id, "woken", { seconds });
  }

  instanceSuspended(id: string, seconds: number, reason: string): void {
    this.metrics.instanceSuspended(seconds);
    this.databaseMetrics.forget(id);
    void this.events.record(id, "suspended", { seconds, reason });
  }

  /** The supervisor restarted a database's postgres (the catalog records the event itself). */
  instanceRestarted(id: string): void {
    this.metrics.instanceRestarted(id);
  }

  /** Headline figures for `ccp db status`; undefined while the database is not running. */
  async headline(row: DatabaseRow): Promise<Headline | undefined> {
    return this.databaseMetrics.headline(row);
  }
}
