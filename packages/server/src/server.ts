import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { pino, type Logger as PinoLogger } from "pino";
import { AdminAuth } from "./api/admin-auth.js";
import { createApp } from "./api/app.js";
import { BranchService } from "./branches/service.js";
import { BackupScheduler } from "./backups/scheduler.js";
import { restoreToPointInTime } from "./backups/pitr.js";
import { BackupService } from "./backups/service.js";
import { DirBackupStore } from "./backups/store.js";
import { Observability } from "./observability/service.js";
import { Catalog, type DatabaseRow } from "./catalog/catalog.js";
import { StorageQuota } from "./databases/storage-quota.js";
import { CcpError } from "./errors.js";
import type { ServerConfig } from "./config.js";
import { DatabaseService, type ReadOnlyView } from "./databases/service.js";
import { Gateway } from "./gateway/gateway.js";
import { hashSecret, newAdminKey, secretMatches } from "./ids.js";
import { resolvePgBinaries } from "./runtime/process/binaries.js";
import { copyTree, makeDir } from "./runtime/process/fs-util.js";
import { PostgresServer, SOCKET_PORT } from "./runtime/process/postgres-server.js";
import { isProcessAlive } from "./runtime/process/proc.js";
import { Instances } from "./runtime/instances.js";
import { ProcessDriver } from "./runtime/process/process-driver.js";
import { currentOsUser, ensureTraversable, resolveRunAs } from "./runtime/process/system-user.js";
import { ADMIN_ROLE, ensureTemplate } from "./runtime/process/template.js";
import { loadOrCreateSecret } from "./secrets.js";
import { readUserConfig, writeUserConfig } from "./user-config.js";
import { ensureCertificate } from "./wire/certificate.js";
import { WireProxy } from "./wire/proxy.js";
import { serveWebSockets } from "./wire/websocket.js";
import { databaseUrl } from "./wire/url.js";
import { VERSION } from "./version.js";

export interface RunningServer {
  readonly url: string;
  readonly config: ServerConfig;
  readonly app: FastifyInstance;
  readonly databases: DatabaseService;
  /** The process driver (tests and benches reach its paths); the rest of ccpd goes through `instances`. */
  readonly driver: ProcessDriver;
  readonly instances: Instances;
  readonly catalog: Catalog;
  readonly gateway: Gateway;
  readonly backups: BackupService;
  readonly branches: BranchService;
  readonly store: DirBackupStore;
  readonly wire: WireProxy;
  readonly observability: Observability;
  /** The storage quota's sampler (tests call quota.check(id) instead of waiting for it). */
  readonly quota: StorageQuota;
  /** The port the wire endpoint listens on. */
  readonly wirePort: number;
  /** PEM file of the wire endpoint's certificate (for clients that verify it). */
  readonly tlsCertFile: string;
  /** Set on the first start only: the admin key that was created and saved. */
  readonly createdAdminKey: string | undefined;
  close(): Promise<void>;
}

/** One ccpd per data dir: a pid file, taken over if its owner is gone. */
function lockDataDir(dataDir: string): () => void {
  const file = path.join(dataDir, "ccpd.pid");
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, "utf8").trim());
    if (pid && pid !== process.pid && isProcessAlive(pid)) {
      throw new CcpError("conflict", `Another ccpd (pid ${pid}) is already using ${dataDir}.`, { hint: "Stop it first, or pass a different --data-dir." });
    }
  }
  writeFileSync(file, `${process.pid}\n`);
  return () => rmSync(file, { force: true });
}

/**
 * Start ccpd: catalog, runtime, reconciliation, HTTP API. Returns once it
 * listens. Signal handling is the caller's (see the CLI's `server start`).
 */
export async function startServer(config: ServerConfig, options: { logger?: PinoLogger } = {}): Promise<RunningServer> {
  const log = options.logger ?? pino({ level: config.env["CCP_LOG_LEVEL"] ?? "info" }, pino.destination(2));
  const bin = resolvePgBinaries(config.env);
  const runAs = resolveRunAs(config.instanceUser);
  const ccpdOsUser = currentOsUser();

  makeDir(config.dataDir, runAs ? 0o755 : 0o700, undefined);
  for (const dir of ensureTraversable(config.dataDir, runAs)) {
    log.warn(`granted search permission (o+x) on ${dir} so the instance user "${runAs?.name}" can reach the data dir`);
  }
  const unlock = lockDataDir(config.dataDir);
  const cleanups: (() => Promise<void> | void)[] = [unlock];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) {
      const t = Date.now();
      await fn();
      log.debug(`shutdown step took ${Date.now() - t} ms`);
    }
  };

  try {
    const templateDir = await ensureTemplate({ bin, templatesDir: path.join(config.dataDir, "templates"), runAs, ccpdOsUser });

    let catalog: Catalog;
    if (config.catalogUrl) {
      catalog = new Catalog({ connectionString: config.catalogUrl });
    } else {
      const root = path.join(config.dataDir, "catalog");
      const data = path.join(root, "data");
      makeDir(root, 0o700, runAs);
      if (!existsSync(data)) await copyTree(templateDir, data);
      makeDir(path.join(root, "run"), 0o700, runAs);
      const server = new PostgresServer({ bin, dataDir: data, socketDir: path.join(root, "run"), logFile: path.join(root, "postgres.log"), runAs, ccpdOsUser });
      server.onUnexpectedExit((info) => log.error(`catalog postgres exited unexpectedly (code ${info.code}, signal ${info.signal}); restart ccpd`));
      await server.start();
      cleanups.push(() => server.stop());
      catalog = new Catalog({ host: path.join(root, "run"), port: SOCKET_PORT, user: ADMIN_ROLE, database: "postgres" });
    }
    cleanups.push(() => catalog.close());
    await catalog.migrate();

    const url = `http://${config.listen.includes(":") ? `[${config.listen}]` : config.listen}:${config.port}`;
    let createdAdminKey: string | undefined;
    if ((await catalog.countAdminKeys()) === 0) {
      createdAdminKey = newAdminKey();
      await catalog.addAdminKey(hashSecret(createdAdminKey));
    }

    const store = new DirBackupStore(path.join(config.dataDir, "backups"));
    const adminAuth = new AdminAuth(catalog);
    const driver = new ProcessDriver({
      bin,
      instancesDir: path.join(config.dataDir, "instances"),
      templateDir,
      runAs,
      ccpdOsUser,
      walArchiveDir: (id) => store.walDir(id),
      archiveTimeoutS: config.backups.archiveTimeoutS,
      warmPool: config.warmPool,
      defaultLimits: config.defaultLimits,
      isolation: config.isolation,
      ...(config.uidRange ? { uidRange: config.uidRange } : {}),
    });
    for (const f of driver.isolation()) if (!f.enforced) log.warn(`isolation: ${f.name} not enforced: ${f.detail}`);
    cleanups.push(() => driver.shutdown());
    const instances = new Instances({ driver, catalog, log, suspendAfterMs: config.suspendAfterMs, wakeTimeoutMs: config.wakeTimeoutMs });
    cleanups.push(() => instances.close());
    instances.events.on("exit", (e) => {
      log.warn(`instance ${e.id}: postgres exited (code ${e.exitCode}, signal ${e.signal}); restarting`);
      void catalog.recordRestart(e.id, { exit_code: e.exitCode, signal: e.signal }).catch((err: Error) => log.error(err.message));
      obs.instanceRestarted(e.id);
    });
    instances.events.on("restart", (e) => {
      if (e.error) log.error(`instance ${e.id}: restart failed, retrying: ${e.error.message}`);
    });
    instances.events.on("wake", (e) => {
      log.info(`instance ${e.id}: woke in ${e.ms} ms (${e.waiters + 1} waiting)`);
      obs.instanceWoken(e.id, e.ms / 1000);
    });
    instances.events.on("suspend", (e) => {
      log.info(`instance ${e.id}: suspended (${e.reason}) in ${e.ms} ms`);
      obs.instanceSuspended(e.id, e.ms / 1000, e.reason);
    });

    const secret = loadOrCreateSecret(config.dataDir);
    const certificate = await ensureCertificate(config.dataDir, config.domain, config.tls);
    // The data plane's view of limits (the connections bound, why a database is read-only); `databases` is set below, before any request.
    const dataPlaneLimits = {
      connections: (row: DatabaseRow): number | undefined => databases.limitsOf(row).connections,
      readOnly: (row: DatabaseRow): { message: string; details: Record<string, unknown> } | undefined => {
        if (!row.read_only_since) return undefined;
        const v: ReadOnlyView = databases.readOnlyView(row);
        return { message: v.message, details: { reason: v.reason, storage_used_bytes: v.storage_used_bytes, storage_limit_bytes: v.storage_limit_bytes } };
      },
    };
    const wire = new WireProxy({
      listen: config.listen,
      port: config.wirePort,
      domain: config.domain,
      tls: certificate,
      catalog,
      instances,
      wakeTimeoutMs: config.wakeTimeoutMs,
      maxConnectionsPerInstance: config.wireMaxConnections,
      limits: dataPlaneLimits,
      startupTimeoutMs: config.wireStartupTimeoutMs,
      secret,
      log,
    });
    let wirePort = config.wirePort;
    const obs = new Observability({
      catalog,
      driver,
      adminAuth,
      enabled: config.metrics.enabled,
      cacheMs: config.metrics.cacheMs,
      sampleEveryMs: config.metrics.sampleEveryMs,
      sources: { gatewayPools: () => gateway.poolFigures(), wireSessions: () => wire.sessionCounts() },
      log,
    });
    cleanups.push(() => obs.close());
    const databases: DatabaseService = new DatabaseService({
      catalog,
      instances,
      domain: config.domain,
      log,
      secret,
      databaseUrl: (o) => databaseUrl({ ...o, domain: config.domain, listen: config.listen, wirePort }),
      observer: obs.databaseObserver(),
      headline: (row) => obs.headline(row),
      defaultLimits: config.defaultLimits,
      limitsChanged: (id): Promise<void> => quota.check(id),
    });
    const quota: StorageQuota = new StorageQuota({
      catalog,
      instances,
      databases,
      log,
      everyMs: config.storageCheckMs,
      endSessions: (id) => instances.goingAway(id, "limits"),
    });
    cleanups.push(() => quota.close());
    const backups = new BackupService({ catalog, instances, store, databases, log, observer: obs.backupObserver() });
    const branches = new BranchService({ catalog, instances, databases, backups, log, retentionDays: config.backups.retentionDays });
    // Before databases.reconcile(): an interrupted restore or branch reset must get its previous data back before the instance starts.
    await backups.reconcile();
    await branches.reconcile();
    await databases.reconcile();

    const gateway = new Gateway({ catalog, instances, settings: config.gateway, limits: dataPlaneLimits });
    let scheduler: BackupScheduler | undefined;
    if (config.backups.dailyAt) {
      scheduler = new BackupScheduler({ catalog, backups, settings: { dailyAt: config.backups.dailyAt, retentionDays: config.backups.retentionDays }, log });
      const s = scheduler;
      cleanups.push(() => s.stop());
    }
    cleanups.push(() => gateway.close());
    // The one "instance going away" hook: connections close, cached rows go, and a destroyed database's backups with it.
    instances.onGoingAway(async (id, why) => {
      if (why === "destroyed") return backups.forgetDatabase(id);
      if (why === "credentials") return gateway.invalidate(id);
      wire.disconnect(id);
      await gateway.forget(id);
    });
    wirePort = await wire.listen();
    cleanups.push(() => wire.close());

    await adminAuth.load();
    const pitr = (ref: string, time: string, name: string) =>
      restoreToPointInTime({ databases, backups, instances, retentionDays: config.backups.retentionDays }, ref, time, name);
    const app = await createApp({ databases, backups, branches, pitr, adminAuth, gateway, observability: obs, domain: config.domain, version: VERSION, loggerInstance: log, httpLimits: config.http });
    const stopWebSockets = serveWebSockets(app.server, wire, config.domain);
    await app.listen({ port: config.port, host: config.listen });
    cleanups.push(() => app.close());
    // Runs before app.close (cleanups run in reverse): upgraded sockets would keep the HTTP server from closing.
    cleanups.push(stopWebSockets);
    scheduler?.start();
    instances.startAutosuspend();
    quota.start();
    const address = app.server.address();
    const boundUrl = typeof address === "object" && address ? url.replace(/:\d+$/, `:${address.port}`) : url;

    // Save API URL + key so the local CLI works with no login. On later starts,
    // keep the saved URL current if the saved key is one of ours.
    const saved = readUserConfig(config.env);
    if (createdAdminKey) {
      writeUserConfig({ apiUrl: boundUrl, token: createdAdminKey }, config.env);
    } else if (saved && saved.apiUrl !== boundUrl && (await catalog.adminKeyHashes()).some((h) => secretMatches(saved.token, h))) {
      writeUserConfig({ apiUrl: boundUrl, token: saved.token }, config.env);
    }

    let closing: Promise<void> | undefined;
    return {
      url: boundUrl,
      config,
      app,
      databases,
      driver,
      instances,
      catalog,
      gateway,
      backups,
      branches,
      store,
      wire,
      observability: obs,
      quota,
      wirePort,
      tlsCertFile: certificate.certFile,
      createdAdminKey,
      close: () => (closing ??= cleanup()),
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
