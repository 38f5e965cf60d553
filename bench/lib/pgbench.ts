import { execFile } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Where pgbench connects: libpq environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, …). */
export type PgEnv = Readonly<Record<string, string>>;

export interface PgbenchRun {
  /** `{ builtin: "select-only" }` (-b) or a custom script file (-f). */
  readonly script: { readonly builtin: string } | { readonly file: string };
  readonly clients: number;
  readonly seconds: number;
  /** Directory for the per-transaction logs (-l); one prefix per run. */
  readonly logDir: string;
  readonly connection: PgEnv;
  /** -M; default simple. */
  readonly protocol?: "simple" | "extended" | "prepared";
  /** Run pgbench under `nice -n <n>`: a load generator that stands for clients on other machines. */
  readonly nice?: number;
}

export interface PgbenchResult {
  /** pgbench's own "tps = … (without initial connection time)". */
  readonly tps: number;
  /** Latency of every processed transaction, in ms (from the -l log, µs resolution). */
  readonly latencies: number[];
  readonly stdout: string;
}

let runs = 0;

/**
 * One `pgbench -n` run for a fixed time, -j 2 when there is more than one client;
 * any failed transaction or client error fails the run. Latencies come from the
 * per-transaction log, one sample per processed transaction.
 */
export async function runPgbench(o: PgbenchRun): Promise<PgbenchResult> {
  const prefix = `pgbench-${process.pid}-${++runs}-c${o.clients}`;
  const script = "builtin" in o.script ? ["-b", o.script.builtin] : ["-f", o.script.file];
  const args = ["-n", "-M", o.protocol ?? "simple", ...script, "-c", String(o.clients), "-j", String(o.clients > 1 ? 2 : 1), "-T", String(o.seconds)];
  args.push("-l", `--log-prefix=${path.join(o.logDir, prefix)}`);
  let stdout: string;
  try {
    // Only the libpq variables given: nothing from the caller's environment leaks into where pgbench connects.
    const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", LC_ALL: "C", ...o.connection };
    const [cmd, argv] = o.nice === undefined ? ["pgbench", args] : ["nice", ["-n", String(o.nice), "pgbench", ...args]];
    ({ stdout } = await execFileAsync(cmd, argv, { env, maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`pgbench -c ${o.clients} failed: ${e.message}\n${e.stdout ?? ""}${(e.stderr ?? "").split("\n").slice(-10).join("\n")}`);
  }
  const tps = /^tps = ([\d.]+) \(without initial connection time\)$/m.exec(stdout)?.[1];
  const processed = /^number of transactions actually processed: (\d+)$/m.exec(stdout)?.[1];
  const failed = /^number of failed transactions: (\d+)/m.exec(stdout)?.[1] ?? "0";
  if (!tps || !processed) throw new Error(`cannot read pgbench's output:\n${stdout}`);
  if (failed !== "0") throw new Error(`pgbench: ${failed} failed transactions:\n${stdout}`);
  // Log line: client_id transaction_no latency_us script_no epoch_s epoch_us
  const latencies: number[] = [];
  for (const file of readdirSync(o.logDir).filter((f) => f.startsWith(`${prefix}.`))) {
    for (const line of readFileSync(path.join(o.logDir, file), "utf8").split("\n")) {
      const us = line.split(" ")[2];
      if (us !== undefined) latencies.push(Number(us) / 1000);
    }
    rmSync(path.join(o.logDir, file));
  }
  if (latencies.length !== Number(processed)) throw new Error(`pgbench logged ${latencies.length} transactions but processed ${processed}`);
  return { tps: Number(tps), latencies, stdout };
}
