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
import { Catalog } from "./catalog/catalog.js";
import { CcpError } from "./errors.js";
import type { ServerConfig } from "./config.js";
import { DatabaseService } from "./databases/service.js";
import { Gateway } from "./gateway/gateway.js";
import { hashSecret, newAdminKey, secretMatches } from "./ids.js";
import { resolvePgBinaries } from "./runtime/process/binaries.js";
import { copyTree, makeDir } from "./runtime/process/fs-util.js";
import { PostgresServer, SOCKET_PORT } from "./runtime/process/postgres-server.js";
import { isProcessAlive } from "./runtime/process/proc.js";
import { ProcessDriver } from "./runtime/process/process-driver.js";
import { currentOsUser, ensureTraversable, resolveRunAs } from "./runtime/process/system-user.js";
import { ADMIN_ROLE, ensureTemplate } from "./runtime/process/template.js";
import { loadOrCreateSecret } from "./secrets.js";
import { readUserConfig, writeUserConfig } from "./user-config.js";
import { ensureCertificate } from "./wire/certificate.js";
import { WireProxy } from "./wire/proxy.js";
import { databaseUrl } from "./wire/url.js";
import { VERSION } from "./version.js";

export interface RunningServer {
  readonly url: string;
  readonly config: ServerConfig;
  readonly app: FastifyInstance;
  readonly databases: DatabaseService;
  readonly driver: ProcessDriver;
  readonly catalog: Catalog;
  readonly gateway: Gateway;
  readonly backups: BackupService;
  readonly branches: BranchService;
  readonly store: DirBackupStore;
  readonly wire: WireProxy;
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
    const driver = new ProcessDriver({
      bin,
      instancesDir: path.join(config.dataDir, "instances"),
      templateDir,
      runAs,
      ccpdOsUser,
      walArchiveDir: (id) => store.walDir(id),
      archiveTimeoutS: config.backups.archiveTimeoutS,
      onRestart: (e) => {
        log.warn(`instance ${e.id}: postgres exited (code ${e.exitCode}, signal ${e.signal}); restarting`);
        void catalog.recordRestart(e.id, { exit_code: e.exitCode, signal: e.signal }).catch((err: Error) => log.error(err.message));
      },
      onRestartFailed: (id, err) => log.error(`instance ${id}: restart failed, retrying: ${err.message}`),
    });
    cleanups.push(() => driver.shutdown());

    const secret = loadOrCreateSecret(config.dataDir);
    const certificate = await ensureCertificate(config.dataDir, config.domain, config.tls);
    const wire = new WireProxy({
      listen: config.listen,
      port: config.wirePort,
      domain: config.domain,
      tls: certificate,
      catalog,
      driver,
      maxConnectionsPerInstance: config.wireMaxConnections,
      startupTimeoutMs: config.wireStartupTimeoutMs,
      secret,
      log,
    });
    let wirePort = config.wirePort;
    const databases = new DatabaseService({
      catalog,
      driver,
      domain: config.domain,
      log,
      secret,
      databaseUrl: (o) => databaseUrl({ ...o, domain: config.domain, listen: config.listen, wirePort }),
    });
    const backups = new BackupService({
      catalog,
      driver,
      store,
      databases,
      log,
      beforeStop: async (id) => {
        wire.disconnect(id);
        await gateway.forget(id);
      },
    });
    const branches = new BranchService({
      catalog,
      driver,
      store,
      databases,
      backups,
      log,
      retentionDays: config.backups.retentionDays,
      beforeStop: async (id) => {
        wire.disconnect(id);
        await gateway.forget(id);
      },
    });
    // Before databases.reconcile(): an interrupted restore or branch reset must get its previous data back before the instance starts.
    await backups.reconcile();
    await branches.reconcile();
    await databases.reconcile();

    const gateway = new Gateway({ catalog, driver, settings: config.gateway });
    let scheduler: BackupScheduler | undefined;
    if (config.backups.dailyAt) {
      scheduler = new BackupScheduler({ catalog, backups, settings: { dailyAt: config.backups.dailyAt, retentionDays: config.backups.retentionDays }, log });
      const s = scheduler;
      cleanups.push(() => s.stop());
    }
    cleanups.push(() => gateway.close());
    databases.onBeforeRemove(async (id) => {
      wire.disconnect(id);
      await gateway.forget(id);
    });
    databases.onRemoved((id) => backups.forgetDatabase(id));
    databases.onTokenRotated((id) => gateway.invalidate(id));
    wirePort = await wire.listen();
    cleanups.push(() => wire.close());

    const adminAuth = new AdminAuth(catalog);
    await adminAuth.load();
    const pitr = (ref: string, time: string, name: string) =>
      restoreToPointInTime({ databases, backups, driver, retentionDays: config.backups.retentionDays }, ref, time, name);
    const app = await createApp({ databases, backups, branches, pitr, adminAuth, gateway, domain: config.domain, version: VERSION, loggerInstance: log, httpLimits: config.http });
    await app.listen({ port: config.port, host: config.listen });
    cleanups.push(() => app.close());
    scheduler?.start();
    branches.start();
    cleanups.push(() => branches.stop());
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
      catalog,
      gateway,
      backups,
      branches,
      store,
      wire,
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
