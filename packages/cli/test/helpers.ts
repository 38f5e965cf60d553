import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const CCP_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "bin", "ccp.js");

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the built `ccp` binary. */
export function runCcp(args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string; input?: string }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CCP_BIN, ...args], {
      env: { ...options.env, NO_COLOR: "1" },
      cwd: options.cwd ?? process.cwd(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}

/** A real ccpd, started through the CLI (`ccp server start`) on a fresh data dir. */
export class TestCcpd {
  readonly root: string;
  readonly dataDir: string;
  readonly env: NodeJS.ProcessEnv;
  #child: ChildProcess | undefined;
  #output = "";
  url = "";

  constructor(root = mkdtempSync(path.join(os.tmpdir(), "ccp-test-"))) {
    this.root = root;
    this.dataDir = path.join(root, "data");
    this.env = {
      PATH: process.env["PATH"],
      HOME: root,
      XDG_CONFIG_HOME: path.join(root, "config"),
      XDG_DATA_HOME: path.join(root, "xdg-data"),
      CCP_LOG_LEVEL: "warn",
    };
  }

  get output(): string {
    return this.#output;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(extraArgs: string[] = []): Promise<void> {
    const child = spawn(process.execPath, [CCP_BIN, "server", "start", "--port", "0", "--wire-port", "0", "--data-dir", this.dataDir, ...extraArgs], {
      env: { ...this.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#child = child;
    this.#output = "";
    child.stdout?.on("data", (d: Buffer) => (this.#output += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (this.#output += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ccpd did not start in 60 s:\n${this.#output}`)), 60_000);
      const check = () => {
        const m = /API \+ SQL over HTTP\s+(http:\/\/\S+)/.exec(this.#output);
        if (m?.[1]) {
          clearTimeout(timer);
          this.url = m[1];
          resolve();
        }
      };
      child.stdout?.on("data", check);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`ccpd exited with ${code}:\n${this.#output}`));
      });
    });
  }

  /** Stop with a signal and wait for exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill(signal);
    const code = await exited;
    this.#child = undefined;
    return code;
  }

  ccp(args: string[], options: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return runCcp(args, { env: { ...this.env, ...options.env }, ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.input ? { input: options.input } : {}) });
  }

  adminKey(): string {
    return (JSON.parse(readFileSync(path.join(this.root, "config", "ccp", "config.json"), "utf8")) as { token: string }).token;
  }

  instanceDir(id: string): string {
    return path.join(this.dataDir, "instances", id);
  }

  /** Socket dir of an instance (the admin path: ccp's own role over the unix socket). */
  socketDir(id: string): string {
    return path.join(this.instanceDir(id), "run");
  }

  catalogSocketDir(): string {
    return path.join(this.dataDir, "catalog", "run");
  }

  async dispose(): Promise<void> {
    await this.stop("SIGTERM");
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * Host PID of an instance's running postmaster. Its postmaster.pid is not enough: a sandboxed
 * postmaster writes its pid inside its own pid namespace. Undefined when there is no postmaster.pid
 * (a clean shutdown removes it) or no postmaster runs in the data dir.
 */
export function postmasterPid(dataDir: string): number | undefined {
  if (!existsSync(path.join(dataDir, "postmaster.pid"))) return undefined;
  return postmasters(dataDir)[0]?.pid;
}

/** Whether `ancestor` is `pid`'s parent, or its parent's parent (a sandboxed postmaster's parent is its launcher, ccpd's child). */
export function descendsFrom(pid: number | undefined, ancestor: number | undefined): boolean {
  const parent = (p: number): number | undefined => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      return undefined;
    }
  };
  for (let p = pid, depth = 0; p !== undefined && p > 1 && depth < 3; depth++) {
    p = parent(p);
    if (p === ancestor) return true;
  }
  return false;
}

/** Postmasters whose working directory is `dataDir`, with their parent pid (a killed ccpd's orphans included). */
export function postmasters(dataDir: string): { pid: number; ppid: number }[] {
  let real: string;
  try {
    real = realpathSync(dataDir);
  } catch {
    return [];
  }
  const found: { pid: number; ppid: number }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // A sandboxed postmaster's data dir is bound at the path ccpd named, which may be a link (a claimed pre-started server).
      const here = (p: string) => p === real || p === dataDir;
      if (!here(readlinkSync(`/proc/${name}/cwd`))) continue;
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z") continue;
      const ppid = Number(fields[1]);
      let parentCwd = "";
      try {
        parentCwd = readlinkSync(`/proc/${ppid}/cwd`);
      } catch {
        // parent gone or not ours to read
      }
      if (!here(parentCwd)) found.push({ pid: Number(name), ppid });
    } catch {
      // exited meanwhile
    }
  }
  return found;
}


export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
}

export function tempProject(root: string, name: string): string {
  const dir = path.join(root, name);
  return mkdtempSync(dir);
}
