import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { appendFileSync, chownSync, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { DriverEvents, InstanceEndpoint, InstanceLimits, InstanceState, InstanceStorage, InstanceUsage, IsolationFeature, LimitsApplied, RuntimeDriver, StartOptions } from "../driver.js";
import { postgresSettingsFor } from "../limits.js";
import type { PgBinaries } from "./binaries.js";
import { copyTree, makeDir } from "./fs-util.js";
import { PostgresServer, SOCKET_PORT } from "./postgres-server.js";
import type { RunAs } from "./system-user.js";
import { ADMIN_ROLE } from "./template.js";

/** The process driver's endpoint: a unix socket and peer authentication, spelled out for local tools and benches. */
export interface ProcessEndpoint extends InstanceEndpoint {
  readonly socketDir: string;
  readonly port: number;
  readonly adminUser: string;
}

export interface ProcessDriverOptions {
  readonly bin: PgBinaries;
  /** `<data-dir>/instances`: one folder per instance (data, run, postgres.log). */
  readonly instancesDir: string;
  readonly templateDir: string;
  readonly runAs: RunAs | undefined;
  readonly ccpdOsUser: string;
  /**
   * Where each instance archives its WAL (a local directory of the backup store),
   * through Postgres's basic_archive module: it fsyncs before reporting success
   * and refuses to overwrite a segment with different content.
   */
  readonly walArchiveDir?: (id: string) => string;
  /** archive_timeout in seconds: bounds what an idle-but-written database can lose. */
  readonly archiveTimeoutS?: number;
  /**
   * Pre-copied template data dirs kept ready, so a create renames one into
   * place instead of copying on the request path (default 2; 0 turns it off).
   */
  readonly spares?: number;
  /**
   * Servers kept running from the template, unreachable (socket dir 0700, no
   * database's archive target) until a create claims one (default 2; 0 turns it off).
   */
  readonly warmPool?: number;
  /** Limits of a database created without its own (server defaults): pre-started servers run with their settings. */
  readonly defaultLimits?: InstanceLimits;
}

const ID_DIR = /^db-[0-9a-f]{12}$/;
/** Present in an instance's folder while it is suspended (asleep; woken on demand). */
const SUSPENDED_MARKER = "suspended";
/** A claimed pre-started server's own settings, included by its postgresql.conf. */
const INSTANCE_CONF = "ccp-instance.conf";
/** An instance's limits, kept in its folder so later starts (after a ccpd restart too) apply them. */
const LIMITS_FILE = "limits.json";

interface PooledServer {
  readonly root: string;
  readonly server: PostgresServer;
}

/**
 * Settings every instance starts with (on the command line, so existing data dirs get them too).
 * client_connection_check_interval: a query whose client is gone (closed its connection, or the
 * wire endpoint ended the session) stops within 2 s instead of running to completion; Postgres
 * only polls the socket while a query runs. Sessions may change it (SET).
 */
const INSTANCE_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  client_connection_check_interval: "2s",
  // Query insights (observability/insights.ts): loaded at start, so every instance has it whatever template it came from.
  shared_preload_libraries: "pg_stat_statements",
  "pg_stat_statements.max": "1000",
  // BEGIN/COMMIT and the gateway's DISCARD ALL would crowd out the tenant's statements.
  "pg_stat_statements.track_utility": "off",
  // The instance's log as JSON lines (observability/logs.ts reads them), rotated by Postgres and pruned by ccpd (pruneLogs).
  logging_collector: "on",
  log_destination: "jsonlog",
  log_filename: "postgresql-%Y%m%d-%H%M%S.log",
  log_rotation_size: "10MB",
  log_rotation_age: "1d",
  log_timezone: "UTC",
});

/** Bounds of an instance's log directory: ccpd removes the oldest files beyond these (pruneLogs). */
export const LOG_LIMITS = Object.freeze({ maxBytes: 50 * 1024 * 1024, maxAgeDays: 7 });

/** Each database is its own postgres process tree, supervised by ccpd. */
export class ProcessDriver implements RuntimeDriver {
  readonly name = "process";
  readonly events = new EventEmitter<DriverEvents>();
  readonly storage: InstanceStorage;
  readonly #o: ProcessDriverOptions;
  readonly #servers = new Map<string, PostgresServer>();
  readonly #supervised = new Set<string>();
  /** Instances being started (first start, wake, restart after an exit). */
  readonly #starting = new Set<string>();
  /** Instances whose restart after an exit keeps failing. */
  readonly #failed = new Set<string>();
  /** Complete spare data dirs, ready to be renamed into a new instance. */
  readonly #spares: string[] = [];
  /** Pre-started servers, ready to be renamed into a new instance. */
  readonly #pool: PooledServer[] = [];
  #refilling: Promise<void> | undefined;
  #closed = false;

  constructor(options: ProcessDriverOptions) {
    this.#o = Object.freeze({ ...options });
    makeDir(options.instancesDir, 0o755, undefined);
    // Spares are copied under a temporary name and renamed when complete: a
    // partial copy left by a crash is never used. Spares of another Postgres
    // version (another template) are dropped.
    const current = `.spare-${this.#o.bin.version}-`;
    // A claimed pre-started server stays where it was started (Postgres keeps absolute paths to its
    // config files and pg_control): its instance folder is a symlink to it.
    const claimed = new Set<string>();
    for (const name of readdirSync(options.instancesDir)) {
      if (ID_DIR.test(name) && lstatSync(path.join(options.instancesDir, name)).isSymbolicLink()) claimed.add(readlinkSync(path.join(options.instancesDir, name)));
    }
    for (const name of readdirSync(options.instancesDir)) {
      if (!name.startsWith(".spare-") && !name.startsWith(".pool-")) continue;
      if (claimed.has(name)) continue;
      const dir = path.join(options.instancesDir, name);
      if (name.startsWith(current)) this.#spares.push(dir);
      else this.#staleDirs.push(dir);
    }
    this.storage = Object.freeze({
      dataDir: (id: string) => this.#paths(id).data,
      prepareEmpty: (id: string) => void this.prepareEmpty(id),
      owner: options.runAs ? { uid: options.runAs.uid, gid: options.runAs.gid } : undefined,
    });
    this.#refill();
  }

  /** Pool servers (and partial copies) left by an earlier ccpd: stopped (if one still runs) and removed. */
  readonly #staleDirs: string[] = [];

  /** Top the pools up in the background, one copy or start at a time: pre-started servers first, then spare copies. */
  #refill(): void {
    if (this.#refilling || this.#closed) return;
    this.#refilling = (async () => {
      for (let dir = this.#staleDirs.pop(); dir; dir = this.#staleDirs.pop()) {
        await new PostgresServer(this.#serverOptions(path.join(dir, "data"), path.join(dir, "run"), path.join(dir, "postgres.log"), {}))
          .stopStale()
          .catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      }
      while (!this.#closed) {
        if (this.#pool.length < (this.#o.warmPool ?? 2)) {
          if (!(await this.#startPooled())) return;
        } else if (this.#spares.length < (this.#o.spares ?? 2)) {
          if (!(await this.#copySpare())) return;
        } else return;
      }
    })().finally(() => (this.#refilling = undefined));
  }

  async #copySpare(): Promise<boolean> {
    const suffix = randomBytes(6).toString("hex");
    const tmp = path.join(this.#o.instancesDir, `.spare-tmp-${suffix}`);
    try {
      await copyTree(this.#o.templateDir, tmp);
      const ready = path.join(this.#o.instancesDir, `.spare-${this.#o.bin.version}-${suffix}`);
      renameSync(tmp, ready);
      this.#spares.push(ready);
      return true;
    } catch {
      rmSync(tmp, { recursive: true, force: true });
      return false; // a create copies the template itself meanwhile
    }
  }

  /**
   * Start one server for the warm pool, from a spare copy or the template. It has
   * archive_mode on (fixed at start) but no archive target: a claim sets the
   * database's own with ALTER SYSTEM and a reload.
   */
  async #startPooled(): Promise<boolean> {
    const root = path.join(this.#o.instancesDir, `.pool-${randomBytes(6).toString("hex")}`);
    const data = path.join(root, "data");
    const run = path.join(root, "run");
    // Its log directory is the one its database's folder (a link to this one) will name.
    const server = new PostgresServer(
      this.#serverOptions(data, run, path.join(root, "postgres.log"), {
        log_directory: path.join(root, "log"),
        ...this.#archiveModeSettings(),
        ...postgresSettingsFor(this.#o.defaultLimits ?? {}),
      }),
    );
    try {
      makeDir(root, 0o700, this.#o.runAs);
      makeDir(run, 0o700, this.#o.runAs);
      makeDir(path.join(root, "log"), 0o700, this.#o.runAs);
      const spare = this.#spares.shift();
      if (spare) renameSync(spare, data);
      else await copyTree(this.#o.templateDir, data);
      // The claim writes the database's own settings here and signals a reload: no connection, no restart.
      appendFileSync(path.join(data, "postgresql.conf"), `include_if_exists = '${INSTANCE_CONF}'\n`);
      if (this.#closed) throw new Error("driver closed");
      await server.start();
      if (this.#closed) throw new Error("driver closed");
      this.#pool.push({ root, server });
      return true;
    } catch {
      await server.stop().catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
      return false;
    }
  }

  /** How many pre-started servers are ready to be claimed (tests, bench). */
  get warmPoolSize(): number {
    return this.#pool.length;
  }

  #serverOptions(dataDir: string, socketDir: string, logFile: string, settings: Record<string, string>) {
    return {
      bin: this.#o.bin,
      dataDir,
      socketDir,
      logFile,
      runAs: this.#o.runAs,
      ccpdOsUser: this.#o.ccpdOsUser,
      settings: { ...INSTANCE_SETTINGS, ...settings },
    };
  }

  get pgVersion(): string {
    return this.#o.bin.version;
  }

  #paths(id: string) {
    if (!ID_DIR.test(id)) throw new Error(`Not an instance id: ${id}`);
    const root = path.join(this.#o.instancesDir, id);
    return { root, data: path.join(root, "data"), run: path.join(root, "run"), log: path.join(root, "postgres.log"), logDir: path.join(root, "log") };
  }

  #server(id: string): PostgresServer {
    let server = this.#servers.get(id);
    if (!server) {
      const p = this.#paths(id);
      server = new PostgresServer(this.#serverOptions(p.data, p.run, p.log, { log_directory: p.logDir, ...this.#archiveSettings(id), ...postgresSettingsFor(this.limits(id)) }));
      this.#watch(id, server);
      this.#servers.set(id, server);
    }
    return server;
  }

  #watch(id: string, server: PostgresServer): void {
    server.onUnexpectedExit((info) => void this.#restart(id, info.code, info.signal));
  }

  /** archive_mode is fixed when a server starts; the rest of the archive settings can change with a reload. */
  #archiveModeSettings(): Record<string, string> {
    if (!this.#o.walArchiveDir) return {};
    return { archive_mode: "on", archive_library: "basic_archive", archive_timeout: String(this.#o.archiveTimeoutS ?? 60) };
  }

  #archiveDir(id: string): string | undefined {
    const dir = this.#o.walArchiveDir?.(id);
    if (!dir) return undefined;
    // The parent (one folder per database in the store) only needs to be traversable by the instance user.
    makeDir(path.dirname(dir), 0o711, undefined);
    makeDir(dir, 0o700, this.#o.runAs);
    return dir;
  }

  #archiveSettings(id: string): Record<string, string> {
    const dir = this.#archiveDir(id);
    return dir ? { ...this.#archiveModeSettings(), "basic_archive.archive_directory": dir } : {};
  }

  #setState(id: string, state: InstanceState): void {
    this.events.emit("state", { id, state });
  }

  async #restart(id: string, exitCode: number | null, signal: string | null): Promise<void> {
    if (!this.#supervised.has(id)) return;
    this.events.emit("exit", { id, exitCode, signal, at: new Date() });
    this.#starting.add(id);
    this.#setState(id, "starting");
    try {
      // Backends of a killed postmaster may hold its shared memory for a moment;
      // retry with back-off until the new postmaster gets it.
      for (let delay = 50; this.#supervised.has(id); delay = Math.min(delay * 2, 5_000)) {
        await sleep(delay);
        if (!this.#supervised.has(id)) return;
        try {
          await this.#server(id).start();
          this.#failed.delete(id);
          this.events.emit("restart", { id });
          this.#setState(id, "running");
          return;
        } catch (err) {
          this.#failed.add(id);
          this.events.emit("restart", { id, error: err as Error });
        }
      }
    } finally {
      this.#starting.delete(id);
    }
  }

  /**
   * A pre-started server when one is ready (renamed into place and given this
   * database's archive target, without a restart), else a spare copy of the
   * template, else a fresh copy.
   */
  async create(id: string, limits: InstanceLimits = {}): Promise<void> {
    const p = this.#paths(id);
    if (existsSync(p.root)) throw new Error(`Instance directory already exists: ${p.root}`);
    // A pre-started server runs with the default limits' settings: an instance whose limits need others is copied and started.
    if (!sameSettings(postgresSettingsFor(limits), postgresSettingsFor(this.#o.defaultLimits ?? {}))) {
      await this.#createFromCopy(id);
      this.#writeLimits(id, limits);
      return;
    }
    for (let pooled = this.#pool.shift(); pooled; pooled = this.#pool.shift()) {
      if (!pooled.server.running) {
        rmSync(pooled.root, { recursive: true, force: true });
        continue;
      }
      try {
        await this.#claim(id, pooled);
        this.#writeLimits(id, limits);
        this.#refill();
        return;
      } catch {
        // Not usable: drop it (nothing of it reached a database) and take the copy path.
        this.#supervised.delete(id);
        this.#servers.delete(id);
        await pooled.server.stop().catch(() => undefined);
        rmSync(p.root, { force: true });
        rmSync(pooled.root, { recursive: true, force: true });
        break;
      }
    }
    await this.#createFromCopy(id);
    this.#writeLimits(id, limits);
  }

  async #createFromCopy(id: string): Promise<void> {
    const p = this.#paths(id);
    makeDir(p.root, 0o700, this.#o.runAs);
    const spare = this.#spares.shift();
    if (spare) renameSync(spare, p.data);
    else await copyTree(this.#o.templateDir, p.data);
    makeDir(p.run, 0o700, this.#o.runAs);
    this.#refill();
  }

  async #claim(id: string, pooled: PooledServer): Promise<void> {
    const p = this.#paths(id);
    symlinkSync(path.basename(pooled.root), p.root);
    // Later starts (wakes) carry the archive target on the command line, as every instance's do.
    pooled.server.relocate({ settings: { ...INSTANCE_SETTINGS, log_directory: p.logDir, ...this.#archiveSettings(id) } });
    this.#watch(id, pooled.server);
    this.#servers.set(id, pooled.server);
    this.#supervised.add(id);
    const dir = this.#archiveDir(id);
    const pid = pooled.server.pid;
    if (dir) {
      if (!pid) throw new Error("the pre-started server is gone");
      // The same value the command line carries on every later start; a reload (SIGHUP, as pg_reload_conf) applies it now.
      const conf = path.join(p.data, INSTANCE_CONF);
      writeFileSync(conf, `basic_archive.archive_directory = '${dir.replaceAll("'", "''")}'\n`, { mode: 0o600 });
      if (this.#o.runAs) chownSync(conf, this.#o.runAs.uid, this.#o.runAs.gid);
      process.kill(pid, "SIGHUP");
    }
  }

  async start(id: string, once?: StartOptions): Promise<InstanceEndpoint> {
    const p = this.#paths(id);
    if (!existsSync(p.data)) throw new Error(`Instance ${id} has no data directory (${p.data}).`);
    makeDir(p.run, 0o700, this.#o.runAs);
    makeDir(p.logDir, 0o700, this.#o.runAs);
    pruneLogs(p.logDir);
    this.#supervised.add(id);
    const server = this.#server(id);
    const already = server.running;
    if (!already) {
      this.#starting.add(id);
      this.#setState(id, "starting");
    }
    try {
      await server.start(once);
    } catch (err) {
      this.#supervised.delete(id);
      this.#setState(id, await this.state(id));
      throw err;
    } finally {
      if (!already) this.#starting.delete(id);
    }
    this.#failed.delete(id);
    rmSync(path.join(p.root, SUSPENDED_MARKER), { force: true });
    if (!already) this.#setState(id, "running");
    return this.endpoint(id);
  }

  async suspend(id: string): Promise<void> {
    const p = this.#paths(id);
    // The marker first: a ccpd killed during the stop finds the instance asleep, not "stopped".
    writeFileSync(path.join(p.root, SUSPENDED_MARKER), `${new Date().toISOString()}\n`);
    this.#supervised.delete(id);
    await this.#server(id).stop();
    this.#setState(id, "suspended");
  }

  async stop(id: string): Promise<void> {
    this.#supervised.delete(id);
    await this.#server(id).stop();
    if (ID_DIR.test(id) && existsSync(this.#paths(id).root)) rmSync(path.join(this.#paths(id).root, SUSPENDED_MARKER), { force: true });
    this.#setState(id, await this.state(id));
  }

  async destroy(id: string): Promise<void> {
    this.#supervised.delete(id);
    await this.#server(id).stop();
    this.#servers.delete(id);
    const { root } = this.#paths(id);
    // A claimed pre-started server: the folder the link points at goes too.
    const target = existsSync(root) && lstatSync(root).isSymbolicLink() ? path.resolve(this.#o.instancesDir, readlinkSync(root)) : undefined;
    rmSync(root, { recursive: true, force: true });
    if (target) rmSync(target, { recursive: true, force: true });
    this.#setState(id, "absent");
  }

  /** An instance's recorded limits ({} when none were set). */
  limits(id: string): InstanceLimits {
    try {
      return JSON.parse(readFileSync(path.join(this.#paths(id).root, LIMITS_FILE), "utf8")) as InstanceLimits;
    } catch {
      return {};
    }
  }

  #writeLimits(id: string, limits: InstanceLimits): void {
    writeFileSync(path.join(this.#paths(id).root, LIMITS_FILE), `${JSON.stringify(limits)}\n`, { mode: 0o600 });
  }

  /** Postgres settings follow the limits at the next start: nothing is enforced live by this driver yet. */
  async setLimits(id: string, limits: InstanceLimits): Promise<LimitsApplied> {
    if (!existsSync(this.#paths(id).root)) throw new Error(`Instance ${id} does not exist.`);
    this.#writeLimits(id, limits);
    const server = this.#servers.get(id);
    const p = this.#paths(id);
    server?.relocate({ settings: { ...INSTANCE_SETTINGS, log_directory: p.logDir, ...this.#archiveSettings(id), ...postgresSettingsFor(limits) } });
    return { live: [], nextStart: Object.keys(limits) as (keyof InstanceLimits)[] };
  }

  /** Storage is the data dir's size (data and WAL); the rest is not measured by this driver yet. */
  async usage(id: string): Promise<InstanceUsage> {
    return { storageBytes: treeSize(this.#paths(id).data) };
  }

  isolation(): readonly IsolationFeature[] {
    const user = this.#o.runAs ? `every instance runs as the one OS user "${this.#o.runAs.name}"` : "instances run as ccpd's own OS user";
    return [
      { name: "identity", enforced: false, detail: user },
      { name: "sandbox", enforced: false, detail: "instances run in the host's namespaces" },
      { name: "memory", enforced: false, detail: "no memory limit is enforced by the process driver" },
      { name: "cpu", enforced: false, detail: "no CPU quota is enforced by the process driver" },
      { name: "pids", enforced: false, detail: "no process limit is enforced by the process driver" },
      { name: "storage", enforced: false, detail: "no storage quota is enforced by the process driver" },
    ];
  }

  /** The instance's data directory (backups copy from it and restore into it). */
  dataDir(id: string): string {
    return this.#paths(id).data;
  }

  /** Make an empty instance directory (run dir included) for a restore to fill. */
  prepareEmpty(id: string): string {
    const p = this.#paths(id);
    if (existsSync(p.root)) throw new Error(`Instance directory already exists: ${p.root}`);
    makeDir(p.root, 0o700, this.#o.runAs);
    makeDir(p.run, 0o700, this.#o.runAs);
    return p.root;
  }

  get runAs(): RunAs | undefined {
    return this.#o.runAs;
  }

  async state(id: string): Promise<InstanceState> {
    return this.stateNow(id);
  }

  /** state() without the promise: the process driver knows at once. */
  stateNow(id: string): InstanceState {
    if (this.#starting.has(id)) return "starting";
    if (this.#servers.get(id)?.running) return "running";
    const p = this.#paths(id);
    if (!existsSync(p.data)) return "absent";
    if (this.#failed.has(id)) return "failed";
    return existsSync(path.join(p.root, SUSPENDED_MARKER)) ? "suspended" : "stopped";
  }

  endpoint(id: string): ProcessEndpoint {
    const socketDir = this.#paths(id).run;
    return { transport: { kind: "unix", socketDir, port: SOCKET_PORT }, admin: { user: ADMIN_ROLE }, socketDir, port: SOCKET_PORT, adminUser: ADMIN_ROLE };
  }

  /** Where the instance writes its JSON log files (observability/logs.ts reads them). */
  logDir(id: string): string {
    return this.#paths(id).logDir;
  }

  /** PID of the running postmaster (tests kill it to exercise supervision). */
  pid(id: string): number | undefined {
    return this.#servers.get(id)?.pid;
  }

  async list(): Promise<string[]> {
    return readdirSync(this.#o.instancesDir).filter((name) => ID_DIR.test(name));
  }

  async shutdown(): Promise<void> {
    this.#closed = true;
    await this.#refilling;
    this.#supervised.clear();
    const pooled = this.#pool.splice(0);
    await Promise.all([...this.#servers.values(), ...pooled.map((p) => p.server)].map((s) => s.stop()));
    for (const p of pooled) rmSync(p.root, { recursive: true, force: true });
  }
}

function sameSettings(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** Bytes of the regular files under a directory (symlinks not followed). */
export function treeSize(dir: string): number {
  let total = 0;
  const stack = [dir];
  for (let d = stack.pop(); d !== undefined; d = stack.pop()) {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) stack.push(full);
      else if (e.isFile()) {
        try {
          total += statSync(full).size;
        } catch {
          // removed meanwhile
        }
      }
    }
  }
  return total;
}

/**
 * Keep an instance's log directory within LOG_LIMITS: files older than the age
 * limit go, then the oldest until the rest fit the size limit. The newest file
 * (the one Postgres writes) always stays. Called at each start and by the log
 * reader, so a long-running instance is bounded too.
 */
export function pruneLogs(dir: string, limits: { maxBytes: number; maxAgeDays: number } = LOG_LIMITS, now = Date.now()): void {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.startsWith("postgresql-"));
  } catch {
    return;
  }
  const files = names
    .map((name) => {
      try {
        const st = statSync(path.join(dir, name));
        return { name, size: st.size, mtime: st.mtimeMs };
      } catch {
        return undefined;
      }
    })
    .filter((f) => f !== undefined)
    .sort((a, b) => b.name.localeCompare(a.name)); // newest first: names carry the start time
  let total = 0;
  for (const [i, f] of files.entries()) {
    total += f.size;
    if (i === 0) continue;
    if (total > limits.maxBytes || now - f.mtime > limits.maxAgeDays * 86_400_000) rmSync(path.join(dir, f.name), { force: true });
  }
}
