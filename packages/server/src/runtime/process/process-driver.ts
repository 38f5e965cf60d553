import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { InstanceEndpoint, InstanceState, RestartEvent, RuntimeDriver } from "../driver.js";
import type { PgBinaries } from "./binaries.js";
import { copyTree, makeDir } from "./fs-util.js";
import { PostgresServer, SOCKET_PORT } from "./postgres-server.js";
import type { RunAs } from "./system-user.js";
import { ADMIN_ROLE } from "./template.js";

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
  /** Called each time the supervisor restarts a postgres that died. */
  readonly onRestart?: (event: RestartEvent) => void;
  /** Called when a restart attempt fails (it is retried with back-off). */
  readonly onRestartFailed?: (id: string, error: Error) => void;
}

const ID_DIR = /^db-[0-9a-f]{12}$/;

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
  readonly #o: ProcessDriverOptions;
  readonly #servers = new Map<string, PostgresServer>();
  readonly #supervised = new Set<string>();
  /** Complete spare data dirs, ready to be renamed into a new instance. */
  readonly #spares: string[] = [];
  #refilling: Promise<void> | undefined;
  #closed = false;

  constructor(options: ProcessDriverOptions) {
    this.#o = Object.freeze({ ...options });
    makeDir(options.instancesDir, 0o755, undefined);
    // Spares are copied under a temporary name and renamed when complete: a
    // partial copy left by a crash is never used. Spares of another Postgres
    // version (another template) are dropped.
    const current = `.spare-${this.#o.bin.version}-`;
    for (const name of readdirSync(options.instancesDir)) {
      if (!name.startsWith(".spare-")) continue;
      const dir = path.join(options.instancesDir, name);
      if (name.startsWith(current)) this.#spares.push(dir);
      else rmSync(dir, { recursive: true, force: true });
    }
    this.#refill();
  }

  /** Top the spare pool up in the background (one copy at a time). */
  #refill(): void {
    const target = this.#o.spares ?? 2;
    if (this.#refilling || this.#closed || this.#spares.length >= target) return;
    this.#refilling = (async () => {
      while (!this.#closed && this.#spares.length < target) {
        const suffix = randomBytes(6).toString("hex");
        const tmp = path.join(this.#o.instancesDir, `.spare-tmp-${suffix}`);
        try {
          await copyTree(this.#o.templateDir, tmp);
          const ready = path.join(this.#o.instancesDir, `.spare-${this.#o.bin.version}-${suffix}`);
          renameSync(tmp, ready);
          this.#spares.push(ready);
        } catch {
          rmSync(tmp, { recursive: true, force: true });
          return; // a create copies the template itself meanwhile
        }
      }
    })().finally(() => (this.#refilling = undefined));
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
      server = new PostgresServer({
        bin: this.#o.bin,
        dataDir: p.data,
        socketDir: p.run,
        logFile: p.log,
        runAs: this.#o.runAs,
        ccpdOsUser: this.#o.ccpdOsUser,
        settings: { ...INSTANCE_SETTINGS, log_directory: p.logDir, ...this.#archiveSettings(id) },
      });
      server.onUnexpectedExit((info) => void this.#restart(id, info.code, info.signal));
      this.#servers.set(id, server);
    }
    return server;
  }

  #archiveSettings(id: string): Record<string, string> {
    const dir = this.#o.walArchiveDir?.(id);
    if (!dir) return {};
    // The parent (one folder per database in the store) only needs to be traversable by the instance user.
    makeDir(path.dirname(dir), 0o711, undefined);
    makeDir(dir, 0o700, this.#o.runAs);
    return {
      archive_mode: "on",
      archive_library: "basic_archive",
      "basic_archive.archive_directory": dir,
      archive_timeout: String(this.#o.archiveTimeoutS ?? 60),
    };
  }

  async #restart(id: string, exitCode: number | null, signal: string | null): Promise<void> {
    if (!this.#supervised.has(id)) return;
    this.#o.onRestart?.({ id, exitCode, signal, at: new Date() });
    // Backends of a killed postmaster may hold its shared memory for a moment;
    // retry with back-off until the new postmaster gets it.
    for (let delay = 50; this.#supervised.has(id); delay = Math.min(delay * 2, 5_000)) {
      await sleep(delay);
      if (!this.#supervised.has(id)) return;
      try {
        await this.#server(id).start();
        return;
      } catch (err) {
        this.#o.onRestartFailed?.(id, err as Error);
      }
    }
  }

  async create(id: string): Promise<void> {
    const p = this.#paths(id);
    if (existsSync(p.root)) throw new Error(`Instance directory already exists: ${p.root}`);
    makeDir(p.root, 0o700, this.#o.runAs);
    const spare = this.#spares.shift();
    if (spare) renameSync(spare, p.data);
    else await copyTree(this.#o.templateDir, p.data);
    makeDir(p.run, 0o700, this.#o.runAs);
    this.#refill();
  }

  async start(id: string, once?: { settings?: Record<string, string>; timeoutMs?: number }): Promise<InstanceEndpoint> {
    const p = this.#paths(id);
    if (!existsSync(p.data)) throw new Error(`Instance ${id} has no data directory (${p.data}).`);
    makeDir(p.run, 0o700, this.#o.runAs);
    makeDir(p.logDir, 0o700, this.#o.runAs);
    pruneLogs(p.logDir);
    this.#supervised.add(id);
    try {
      await this.#server(id).start(once);
    } catch (err) {
      this.#supervised.delete(id);
      throw err;
    }
    return this.endpoint(id);
  }

  async stop(id: string): Promise<void> {
    this.#supervised.delete(id);
    await this.#server(id).stop();
  }

  async destroy(id: string): Promise<void> {
    await this.stop(id);
    this.#servers.delete(id);
    rmSync(this.#paths(id).root, { recursive: true, force: true });
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

  state(id: string): InstanceState {
    if (this.#servers.get(id)?.running) return "running";
    return existsSync(this.#paths(id).data) ? "stopped" : "absent";
  }

  endpoint(id: string): InstanceEndpoint {
    return { socketDir: this.#paths(id).run, port: SOCKET_PORT, adminUser: ADMIN_ROLE };
  }

  /** Postgres's log for an instance, last lines first-to-last (for errors and `info`). */
  logTail(id: string, lines?: number): string {
    return this.#server(id).logTail(lines);
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
    await Promise.all([...this.#servers.values()].map((s) => s.stop()));
  }
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
