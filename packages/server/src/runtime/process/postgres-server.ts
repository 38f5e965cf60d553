import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { PgBinaries } from "./binaries.js";
import { isProcessAlive } from "./proc.js";
import type { RunAs } from "./system-user.js";

export interface PostgresServerOptions {
  readonly bin: PgBinaries;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly logFile: string;
  readonly runAs: RunAs | undefined;
  /** OS user of ccpd: mapped by pg_ident.conf to every role over the socket. */
  readonly ccpdOsUser: string;
  /** Extra `-c name=value` settings. */
  readonly settings?: Readonly<Record<string, string>>;
  readonly startTimeoutMs?: number;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The fixed port number in the socket file name `.s.PGSQL.5432`; there is no TCP listener. */
export const SOCKET_PORT = 5432;

function readPidFile(dataDir: string): { pid: number; status: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`${dataDir}/postmaster.pid`, "utf8");
  } catch {
    return undefined;
  }
  const lines = text.split("\n");
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, status: (lines[7] ?? "").trim() };
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * One postmaster, spawned as our direct child (so its exit is seen at once) in
 * its own process group (so a Ctrl-C at ccpd's terminal does not reach it), with
 * its log going straight to a file (so it keeps logging if ccpd dies).
 */
export class PostgresServer {
  #o: PostgresServerOptions;
  #child: ChildProcess | undefined;
  #exited: Promise<ExitInfo> | undefined;
  #stopping = false;
  /** Set once the current child accepted connections: only then is its exit "unexpected" (a failed start is the caller's error). */
  #ready = false;
  #onUnexpectedExit: ((info: ExitInfo) => void) | undefined;

  constructor(options: PostgresServerOptions) {
    this.#o = Object.freeze({ ...options });
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Settings for later starts (a pre-started server claimed by a database gets its own). */
  relocate(options: Pick<PostgresServerOptions, "settings">): void {
    this.#o = Object.freeze({ ...this.#o, ...options });
  }

  /** Called when the postmaster exits without stop() having been asked for. */
  onUnexpectedExit(listener: (info: ExitInfo) => void): void {
    this.#onUnexpectedExit = listener;
  }

  /**
   * A postmaster left running by an earlier ccpd (killed without a clean
   * shutdown) cannot be supervised by this one: shut it down cleanly first.
   */
  async stopStale(): Promise<void> {
    const info = readPidFile(this.#o.dataDir);
    if (!info || !isProcessAlive(info.pid)) return;
    // Its working directory is its data dir, wherever it was started (a pre-started
    // server is renamed into place); anything else is a reused pid.
    let cwd = "";
    try {
      cwd = readlinkSync(`/proc/${info.pid}/cwd`);
    } catch {
      return;
    }
    let dataDir = this.#o.dataDir;
    try {
      dataDir = realpathSync(dataDir);
    } catch {
      // gone: compare as given
    }
    if (cwd !== dataDir) return;
    process.kill(info.pid, "SIGINT");
    const deadline = Date.now() + 15_000;
    while (isProcessAlive(info.pid)) {
      if (Date.now() > deadline) process.kill(info.pid, "SIGKILL");
      await sleep(10);
    }
  }

  writeIdentMap(): void {
    // Only ccpd's OS user may connect, as any role; the socket dir is 0700 besides.
    writeFileSync(`${this.#o.dataDir}/pg_ident.conf`, `ccp ${this.#o.ccpdOsUser} all\n`);
  }

  /**
   * Start and wait until Postgres accepts connections. `once` adds settings and
   * a start-up timeout for this start only (recovery from a backup: recovery
   * targets, restore_command, and time to replay WAL).
   */
  async start(once: { settings?: Readonly<Record<string, string>>; timeoutMs?: number } = {}): Promise<void> {
    if (this.#child) return;
    await this.stopStale();
    this.writeIdentMap();
    const args = ["-D", this.#o.dataDir, "-k", this.#o.socketDir, "-c", "listen_addresses="];
    for (const [k, v] of Object.entries({ ...this.#o.settings, ...once.settings })) args.push("-c", `${k}=${v}`);
    const logFd = openSync(this.#o.logFile, "a", 0o600);
    let child: ChildProcess;
    try {
      child = spawn(this.#o.bin.postgres, args, {
        stdio: ["ignore", logFd, logFd],
        detached: true,
        ...(this.#o.runAs ? { uid: this.#o.runAs.uid, gid: this.#o.runAs.gid } : {}),
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", LC_ALL: "C" },
      });
    } finally {
      closeSync(logFd);
    }
    this.#child = child;
    this.#stopping = false;
    this.#ready = false;
    this.#exited = new Promise<ExitInfo>((resolve) => {
      child.once("exit", (code, signal) => {
        if (this.#child === child) this.#child = undefined;
        const info = { code, signal };
        if (!this.#stopping && this.#ready) this.#onUnexpectedExit?.(info);
        resolve(info);
      });
      child.once("error", () => {
        if (this.#child === child) this.#child = undefined;
        resolve({ code: null, signal: null });
      });
    });
    await this.#waitReady(child, once.timeoutMs ?? this.#o.startTimeoutMs ?? 30_000);
    this.#ready = true;
  }

  async #waitReady(child: ChildProcess, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.#exited?.then(() => (exited = true));
    // Postgres writes "ready" as the 8th line of postmaster.pid once it accepts connections.
    for (let delay = 2; ; delay = Math.min(delay * 2, 10)) {
      if (exited) {
        throw new Error(`Postgres exited during start-up. Log (${this.#o.logFile}):\n${tail(this.#o.logFile)}`);
      }
      const info = readPidFile(this.#o.dataDir);
      if (info && info.pid === child.pid && info.status === "ready") return;
      if (Date.now() > deadline) {
        this.#stopping = true;
        child.kill("SIGKILL");
        // Wait for the exit so the next start() does not mistake this child for a running server.
        await this.#exited;
        throw new Error(`Postgres did not become ready in time. Log (${this.#o.logFile}):\n${tail(this.#o.logFile)}`);
      }
      await sleep(delay);
    }
  }

  /** Fast shutdown (SIGINT), escalating to immediate (SIGQUIT) and then SIGKILL. */
  async stop(timeoutMs = 15_000): Promise<void> {
    const child = this.#child;
    if (!child || !this.#exited) {
      await this.stopStale();
      return;
    }
    this.#stopping = true;
    child.kill("SIGINT");
    const exited = this.#exited;
    // Unref'd: a pending escalation timer must not keep ccpd alive after the server exited.
    const timer = (ms: number) => sleep(ms, undefined, { ref: false }).then(() => "timeout" as const);
    if ((await Promise.race([exited, timer(timeoutMs)])) === "timeout") {
      child.kill("SIGQUIT");
      if ((await Promise.race([exited, timer(5_000)])) === "timeout") child.kill("SIGKILL");
    }
    await exited;
  }
}
