import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { aptInstall, isRoot, which } from "./apt.ts";

const execFileAsync = promisify(execFile);

/** A fixed-duration keep-alive POST load; every request body gets a fresh random integer. */
export interface HttpLoad {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Request body; the one occurrence of `placeholder` is replaced by a random integer in [min, max] per request. */
  readonly body: string;
  readonly random: { readonly placeholder: string; readonly min: number; readonly max: number };
  /** Keep-alive connections, each with one request in flight. */
  readonly connections: number;
  readonly seconds: number;
  /** Directory for the generated wrk script. */
  readonly dir: string;
  /** Pin wrk to these CPUs (a taskset list such as "1"), so it does not share a core with the server under test. */
  readonly cpus?: string;
}

export interface HttpLoadResult {
  /** Completed requests per second. */
  readonly rate: number;
  /** Latency percentiles over every completed request, in ms (wrk's histogram, µs resolution). */
  readonly p50: number;
  readonly p99: number;
  readonly requests: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
}

/**
 * wrk, from Debian's package (installed with apt-get when absent and we are root).
 * A C load generator, as pgbench is on the reference row: the HTTP rows then
 * measure the server, not a JavaScript client competing with it for the cores.
 */
export async function ensureWrk(): Promise<string> {
  const found = await which("wrk");
  if (found) return found;
  if (!isRoot()) throw new Error("wrk is not installed and this bench is not root: apt-get install -y wrk");
  await aptInstall("wrk");
  const bin = await which("wrk");
  if (!bin) throw new Error("apt-get installed wrk, but there is no wrk binary");
  return bin;
}

/** A Lua long string that cannot be closed by its content. */
function luaString(s: string): string {
  let eq = "";
  while (`${s}]`.includes(`]${eq}]`)) eq += "="; // "]" at the end would close the string early too
  return `[${eq}[${s}]${eq}]`;
}

/** Run the load with wrk (two threads at most: this machine's cores are shared with the server). */
export async function runHttpLoad(bin: string, load: HttpLoad): Promise<HttpLoadResult> {
  const { placeholder, min, max } = load.random;
  const parts = load.body.split(placeholder);
  if (parts.length !== 2) throw new Error(`the body must hold the placeholder ${placeholder} exactly once: ${load.body}`);
  const headers = { ...load.headers, "content-type": "application/json" };
  const script = [
    `wrk.method = "POST"`,
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[ ${luaString(k)} ] = ${luaString(v)}`),
    `local before, after = ${luaString(parts[0] as string)}, ${luaString(parts[1] as string)}`,
    `request = function() return wrk.format(nil, nil, nil, before .. math.random(${min}, ${max}) .. after) end`,
    `done = function(s, latency)`,
    `  local e = s.errors`,
    `  io.write(string.format('{"requests":%d,"duration_us":%d,"p50_us":%f,"p99_us":%f,"non2xx":%d,"errors":%d,"timeouts":%d}\\n',`,
    `    s.requests, s.duration, latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write, e.timeout))`,
    `end`,
  ].join("\n");
  const file = path.join(load.dir, "load.lua");
  writeFileSync(file, `${script}\n`);
  const threads = String(Math.min(2, load.connections));
  const args = ["-t", threads, "-c", String(load.connections), "-d", `${load.seconds}s`, "--timeout", "30s", "-s", file, load.url];
  const { stdout } = await execFileAsync(load.cpus === undefined ? bin : "taskset", load.cpus === undefined ? args : ["-c", load.cpus, bin, ...args], {
    maxBuffer: 1024 * 1024,
  });
  // wrk prints its own summary around the line done() writes.
  const line = stdout.split("\n").find((l) => l.startsWith('{"requests":'));
  if (!line) throw new Error(`wrk printed no result line:\n${stdout}`);
  const r = JSON.parse(line) as { requests: number; duration_us: number; p50_us: number; p99_us: number; non2xx: number; errors: number; timeouts: number };
  return { rate: r.requests / (r.duration_us / 1e6), p50: r.p50_us / 1000, p99: r.p99_us / 1000, requests: r.requests, non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts };
}
