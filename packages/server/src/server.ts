import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { pino, type Logger as PinoLogger } from "pino";
import { AdminAuth } from "./api/admin-auth.js";
import { createApp } from "./api/app.js";
import { BranchService } from "./branches/service.js";
import { BackupScheduler } from "./backups/scheduler.js";
import { BackupService } from "./backups/service.js";
import { DirBackupStore } from "./backups/store.js";
import { Observability } from "./observability/service.js";
import { Catalog, type DatabaseRow } from "./catalog/catalog.js";
import { CcpError } from "./errors.js";
import type { ServerConfig } from "./config.js";
import { DatabaseService, limitsOfRow, readOnlyViewOf } from "./databases/service.js";
import { StorageQuota } from "./databases/storage-quota.js";
import { Gateway } from "./gateway/gateway.js";
import { hashSecret, newAdminKey, secretMatches } from "./ids.js";
import { resolvePgBinaries, type PgBinaries } from "./runtime/process/binaries.js";
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

/** Steps run at shutdown, last registered first. */
class Cleanups {
  readonly #steps: (() => Promise<void> | void)[] = [];
  readonly #log: PinoLogger;

  constructor(log: PinoLogger) {
    this.#log = log;
  }

  push(step: () => Promise<void> | void): void {
    this.#steps.push(step);
  }

  async run(): Promise<void> {
    for (const fn of this.#steps.reverse()) {
      const t = Date.now();
      await fn();
      this.#log.debug(`shutdown step took ${Date.now() - t} ms`);
    }
  }
}

/** What every part of ccpd that runs Postgres needs: the binaries, the user instances run as, the template data dir. */
interface Host {
  readonly bin: PgBinaries;
  readonly runAs: ReturnType<typeof resolveRunAs>;
  readonly ccpdOsUser: ReturnType<typeof currentOsUser>;
  readonly templateDir: string;
}

/** The catalog: ccpd's own embedded Postgres (or `--catalog-url`), migrated, with a first admin key on a first start. */
async function bootCatalog(config: ServerConfig, host: Host, cleanups: Cleanups, log: PinoLogger): Promise<{ catalog: Catalog; createdAdminKey: string | undefined }> {
  let catalog: Catalog;
  if (config.catalogUrl) {
    catalog = new Catalog({ connectionString: config.catalogUrl });
  } else {
    const { bin, runAs, ccpdOsUser, templateDir } = host;
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

  let createdAdminKey: string | undefined;
  if ((await catalog.adminKeys.count()) === 0) {
    createdAdminKey = newAdminKey();
    await catalog.adminKeys.add(hashSecret(createdAdminKey));
  }
  return { catalog, createdAdminKey };
}

/** The runtime: the backup store (where WAL is archived to), the process driver and `Instances` above it. */
function bootRuntime(config: ServerConfig, host: Host, catalog: Catalog, cleanups: Cleanups, log: PinoLogger): { store: DirBackupStore; driver: ProcessDriver; instances: Instances } {
  const store = new DirBackupStore(path.join(config.dataDir, "backups"));
  const driver = new ProcessDriver({
    bin: host.bin,
    instancesDir: path.join(config.dataDir, "instances"),
    templateDir: host.templateDir,
    runAs: host.runAs,
    ccpdOsUser: host.ccpdOsUser,
    walArchiveDir: (id) => store.walDir(id),
    archiveTimeoutS: config.backups.archiveTimeoutS,
    warmPool: config.warmPool,
    defaultLimits: config.defaultLimits,
    isolation: config.isolation,
    ...(config.uidRange ? { uidRange: config.uidRange } : {}),
  });
  cleanups.push(() => driver.shutdown());
  const instances = new Instances({ driver, catalog, log, suspendAfterMs: config.suspendAfterMs, wakeTimeoutMs: config.wakeTimeoutMs });
  cleanups.push(() => instances.close());
  return { store, driver, instances };
}

/**
 * Start ccpd: catalog, runtime, then the composition (data plane, services,
 * reconciliation, HTTP API), each built after what it needs. Returns once it
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
  const cleanups = new Cleanups(log);
  cleanups.push(lockDataDir(config.dataDir));
  try {
    const templateDir = await ensureTemplate({ bin, templatesDir: path.join(config.dataDir, "templates"), runAs, ccpdOsUser });
    const host: Host = { bin, runAs, ccpdOsUser, templateDir };
    const { catalog, createdAdminKey } = await bootCatalog(config, host, cleanups, log);
    const runtime = bootRuntime(config, host, catalog, cleanups, log);
    return await compose(config, { catalog, createdAdminKey, ...runtime }, cleanups, log);
  } catch (err) {
    await cleanups.run();
    throw err;
  }
}

/** Everything above the runtime, in dependency order; returns once the wire and HTTP ports listen. */
async function compose(
  config: ServerConfig,
  booted: { catalog: Catalog; createdAdminKey: string | undefined; store: DirBackupStore; driver: ProcessDriver; instances: Instances },
  cleanups: Cleanups,
  log: PinoLogger,
): Promise<RunningServer> {
  const { catalog, createdAdminKey, store, driver, instances } = booted;
  const secret = loadOrCreateSecret(config.dataDir);
  const certificate = await ensureCertificate(config.dataDir, config.domain, config.tls);

  // The data plane's view of limits: the connections bound, and why a database is read-only.
  const defaults = config.defaultLimits;
  const dataPlaneLimits = {
    connections: (row: DatabaseRow): number | undefined => limitsOfRow(row, defaults).connections,
    readOnly: (row: DatabaseRow): { message: string; details: Record<string, unknown> } | undefined => {
      if (!row.read_only_since) return undefined;
      const v = readOnlyViewOf(row, defaults);
      return { message: v.message, details: { reason: v.reason, storage_used_bytes: v.storage_used_bytes, storage_limit_bytes: v.storage_limit_bytes } };
    },
  };
  // The data plane: the wire endpoint (listening comes last, after reconciliation) and the HTTP gateway.
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
  const gateway = new Gateway({ catalog, instances, settings: config.gateway, limits: dataPlaneLimits });
  cleanups.push(() => gateway.close());

  const adminAuth = new AdminAuth(catalog);
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

  const quota = new StorageQuota({ catalog, instances, defaultLimits: defaults, log, everyMs: config.storageCheckMs, endSessions: (id) => instances.goingAway(id, "limits") });
  cleanups.push(() => quota.close());
  const databases = new DatabaseService({
    catalog,
    instances,
    domain: config.domain,
    log,
    secret,
    databaseUrl: (o) => wire.databaseUrl(o),
    observer: obs.databaseObserver(),
    headline: (row) => obs.headline(row),
    defaultLimits: defaults,
    limitsChanged: (id) => quota.check(id),
  });
  // What is not in force, as status reports it: the driver's mechanisms with what ccpd enforces itself (the soft storage quota).
  for (const f of databases.isolation()) if (!f.enforced) log.warn(`isolation: ${f.name} not enforced: ${f.detail}`);
  const { retentionDays } = config.backups;
  const backups = new BackupService({ catalog, instances, store, databases, log, retentionDays, observer: obs.backupObserver() });
  const branches = new BranchService({ catalog, instances, databases, backups, log, retentionDays });
  // The one "instance going away" hook: connections close, cached rows go, and a destroyed database's backups with it.
  instances.onGoingAway(async (id, why) => {
    if (why === "destroyed") return backups.forgetDatabase(id);
    if (why === "credentials") return gateway.invalidate(id);
    wire.disconnect(id);
    await gateway.forget(id);
  });

  // Before databases.reconcile(): an interrupted restore or branch reset must get its previous data back before the instance starts.
  await backups.reconcile();
  await branches.reconcile();
  await databases.reconcile();

  let scheduler: BackupScheduler | undefined;
  if (config.backups.dailyAt) {
    const s = new BackupScheduler({ catalog, backups, settings: { dailyAt: config.backups.dailyAt, retentionDays }, log });
    cleanups.push(() => s.stop());
    scheduler = s;
  }
  const wirePort = await wire.listen();
  cleanups.push(() => wire.close());

  await adminAuth.load();
  const app = await createApp({ databases, backups, branches, adminAuth, gateway, observability: obs, domain: config.domain, version: VERSION, loggerInstance: log, httpLimits: config.http });
  const stopWebSockets = serveWebSockets(app.server, wire, config.domain);
  await app.listen({ port: config.port, host: config.listen });
  cleanups.push(() => app.close());
  // Runs before app.close (cleanups run in reverse): upgraded sockets would keep the HTTP server from closing.
  cleanups.push(stopWebSockets);
  scheduler?.start();
  instances.startAutosuspend();
  quota.start();
  const url = `http://${config.listen.includes(":") ? `[${config.listen}]` : config.listen}:${config.port}`;
  const address = app.server.address();
  const boundUrl = typeof address === "object" && address ? url.replace(/:\d+$/, `:${address.port}`) : url;

  // Save API URL + key so the local CLI works with no login. On later starts,
  // keep the saved URL current if the saved key is one of ours.
  const saved = readUserConfig(config.env);
  if (createdAdminKey) {
    writeUserConfig({ apiUrl: boundUrl, token: createdAdminKey }, config.env);
  } else if (saved && saved.apiUrl !== boundUrl && (await catalog.adminKeys.hashes()).some((h) => secretMatches(saved.token, h))) {
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
    close: () => (closing ??= cleanups.run()),
  };
}
