import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { PgBinaries } from "./binaries.js";
import { findSandboxedPostmaster, jailCommand, sandboxedPostmaster, type JailSpec } from "./jail.js";
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
  /**
   * Run in the sandbox (jail.ts): the spec for each start (cgroups made and
   * limits written by then). Requires runAs. Absent: spawned directly.
   */
  readonly jail?: (once: StartOnce) => JailSpec;
}

export interface StartOnce {
  readonly settings?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /** A recovery start: archived WAL the sandboxed server reads through its restore_command. */
  readonly restoreDir?: string;
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
  /** The postmaster's pid on the host: the child itself, or (sandboxed) its grandchild, known once it is ready. */
  #postmaster: number | undefined;
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

  /** The postmaster's pid as the host sees it (signals sent to it reach Postgres directly). */
  get pid(): number | undefined {
    return this.#child ? (this.#postmaster ?? (this.#o.jail ? undefined : this.#child.pid)) : undefined;
  }

  /** Whether this server runs in the sandbox. */
  get sandboxed(): boolean {
    return this.#o.jail !== undefined;
  }

  /** Settings for later starts (a pre-started server claimed by a database gets its own). */
  relocate(options: Partial<Pick<PostgresServerOptions, "settings" | "jail">>): void {
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
    if (!info) return;
    // Its working directory is its data dir, wherever it was started (a pre-started
    // server is renamed into place; a sandboxed one sees it at the path it was given);
    // anything else is a reused pid.
    const dataDirs = [this.#o.dataDir];
    try {
      dataDirs.push(realpathSync(this.#o.dataDir));
    } catch {
      // gone: compare as given
    }
    let pid: number | undefined;
    if (isProcessAlive(info.pid)) {
      try {
        if (dataDirs.includes(readlinkSync(`/proc/${info.pid}/cwd`))) pid = info.pid;
      } catch {
        // gone meanwhile
      }
    }
    // A sandboxed postmaster wrote its pid inside its own pid namespace.
    pid ??= findSandboxedPostmaster(dataDirs, info.pid);
    if (pid === undefined) {
      // Nothing runs on it: the file is stale. A sandboxed start must not mistake it for its own
      // (each sandboxed postmaster has the same pid in its namespace); Postgres itself would remove it.
      if (this.#o.jail) rmSync(`${this.#o.dataDir}/postmaster.pid`, { force: true });
      return;
    }
    process.kill(pid, "SIGINT");
    const deadline = Date.now() + 15_000;
    while (isProcessAlive(pid)) {
      if (Date.now() > deadline) process.kill(pid, "SIGKILL");
      await sleep(10);
    }
    if (this.#o.jail) rmSync(`${this.#o.dataDir}/postmaster.pid`, { force: true });
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
  async start(once: StartOnce = {}): Promise<void> {
    if (this.#child) return;
    await this.stopStale();
    this.writeIdentMap();
    const args = ["-D", this.#o.dataDir, "-k", this.#o.socketDir, "-c", "listen_addresses="];
    for (const [k, v] of Object.entries({ ...this.#o.settings, ...once.settings })) args.push("-c", `${k}=${v}`);
    const runAs = this.#o.runAs;
    if (this.#o.jail && !runAs) throw new Error("a sandboxed server needs an identity to run as");
    const spec = this.#o.jail?.(once);
    const logFd = openSync(this.#o.logFile, "a", 0o600);
    let child: ChildProcess;
    try {
      const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", LC_ALL: "C" };
      // The launcher starts as root (it makes the sandbox) and drops to runAs itself.
      child =
        spec && runAs
          ? spawn(spec.launcher, jailCommand(spec, runAs.uid, runAs.gid, this.#o.bin.postgres, args), { stdio: ["ignore", logFd, logFd], detached: true, env })
          : spawn(this.#o.bin.postgres, args, { stdio: ["ignore", logFd, logFd], detached: true, ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}), env });
    } finally {
      closeSync(logFd);
    }
    this.#child = child;
    this.#postmaster = undefined;
    this.#stopping = false;
    this.#ready = false;
    this.#exited = new Promise<ExitInfo>((resolve) => {
      child.once("exit", (code, signal) => {
        if (this.#child === child) {
          this.#child = undefined;
          this.#postmaster = undefined;
        }
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
      if (info && info.status === "ready") {
        // Sandboxed, the file holds the postmaster's pid inside its namespace: ours if it is the launcher's grandchild.
        const postmaster = this.#o.jail ? child.pid && sandboxedPostmaster(child.pid, info.pid) : info.pid === child.pid ? info.pid : undefined;
        if (postmaster) {
          this.#postmaster = postmaster;
          return;
        }
      }
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
