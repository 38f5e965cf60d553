import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { logTail, stopChild } from "./child.ts";

const MAIN = fileURLToPath(new URL("./ccpd-main.ts", import.meta.url));

/** A ccpd running in a child process (bench/lib/ccpd-main.ts). */
export interface CcpdProcess {
  readonly url: string;
  /** The admin key the fresh ccpd created. */
  readonly key: string;
  readonly pid: number;
  /** user + system CPU time the process has used so far, in µs (from /proc/<pid>/stat). */
  cpuMicros(): number;
  stop(): Promise<void>;
}

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

/**
 * `cpus`: pin the ccpd (and so the Postgres servers it starts, which inherit
 * the affinity) to these CPUs, a taskset list such as "0".
 */
export async function startCcpdProcess(dir: string, options: { metrics?: boolean; env?: Record<string, string>; cpus?: string } = {}): Promise<CcpdProcess> {
  mkdirSync(dir, { recursive: true });
  const log = path.join(dir, "ccpd.log");
  const logFd = openSync(log, "a");
  let child: ChildProcess;
  try {
    const { cpus, ...rest } = options;
    const args = [process.execPath, "--import", "tsx", MAIN, JSON.stringify({ dataDir: path.join(dir, "data"), ...rest, env: { XDG_CONFIG_HOME: path.join(dir, "config"), ...rest.env } })];
    child = spawn(cpus === undefined ? (args[0] as string) : "taskset", cpus === undefined ? args.slice(1) : ["-c", cpus, ...args], {
      stdio: ["ignore", "pipe", logFd],
    });
  } finally {
    closeSync(logFd);
  }
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once("line", (line) => resolve(line));
    child.once("exit", (code) => reject(new Error(`ccpd exited (${code}) before it was up:\n${logTail(log)}`)));
  });
  const up = JSON.parse(first) as { url: string; key?: string; pid: number };
  if (!up.key) throw new Error("a fresh ccpd created no admin key");
  const pid = up.pid;
  return {
    url: up.url,
    key: up.key,
    pid,
    cpuMicros: () => {
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / CLOCK_TICKS;
    },
    stop: () => stopChild(child),
  };
}
