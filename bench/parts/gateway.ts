import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { resolveServerConfig, startServer, type RunningServer } from "../../packages/server/dist/index.js";
import { ensureWrk, runHttpLoad, type HttpLoad } from "../lib/http-load.ts";
import { api } from "../lib/api.ts";
import type { PartOptions } from "../lib/part.ts";
import { runPgbench } from "../lib/pgbench.ts";
import { retrying } from "../lib/retry.ts";
import { installPostgresMeta, PG_META_VERSION, PostgresMeta } from "../lib/postgres-meta.ts";
import { percentile } from "../lib/stats.ts";
import { renderGrid } from "../lib/table.ts";
import { makeTempDir, removeDir } from "../lib/tmp.ts";

const execFileAsync = promisify(execFile);

const ROWS = 100_000; // pgbench -i -s 1
const SELECT = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
const CONCURRENCY = [1, 16] as const;
const WARMUP_SECONDS = 2;
const TENANT = { user: "clusterbase", database: "default" } as const;
const AID = "%AID%"; // replaced by a random aid in every request body

const TARGET_META_RATIO = 2; // ccp throughput ≥ 2× postgres-meta's
const TARGET_PGBENCH_RATIO = 0.5; // ccp throughput ≥ 50% of pgbench's
const TARGET_P50_GAP_MS = 0.3; // ccp p50 − pgbench p50 at concurrency 1

const CCP = "ccp POST /v1/databases/{id}/query";
const PGBENCH = "pgbench -M simple, unix socket";
const META = `postgres-meta ${PG_META_VERSION} POST /query`;
const FLOOR = "node:http, canned answer, no database";

/**
 * The HTTP hop alone: a bare node:http server in this process (as ccpd is) that
 * reads and parses the same body and answers what ccp answers, without a
 * database. At concurrency 1 a gateway's round trip is at least this hop plus
 * the query's own round trip, so 1 / (1/http + 1/pgbench) bounds what any
 * Node gateway could reach here, however little work it did.
 */
async function startFloor(answer: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      JSON.parse(Buffer.concat(chunks).toString("utf8"));
      res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(answer) });
      res.end(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/query`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** One concurrency's rows: ccp, pgbench, postgres-meta, the bare HTTP hop. */
type Rows = [ccp: Summary, pgbench: Summary, meta: Summary, hop: Summary];

export interface Summary {
  /** Completed requests (transactions) per second. */
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly n: number;
}

/** Nearest-rank percentiles of per-request latencies (pgbench's log). */
function summary(label: string, rate: number, latencies: readonly number[]): Summary {
  const sorted = [...latencies].sort((a, b) => a - b);
  if (sorted.length === 0) throw new Error(`${label}: no completed requests`);
  return { rate, p50: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length };
}

/** POST a JSON body and return the parsed 200 answer. */
async function post(url: string, headers: Record<string, string>, body: unknown): Promise<unknown> {
  const res = await fetch(url, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(body) });
  const json: unknown = await res.json();
  if (res.status !== 200) throw new Error(`POST ${url}: HTTP ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** `pgbench -i -s 1` as root over the instance's socket (peer auth maps root to the tenant role). */
export async function initPgbench(socketDir: string, port: number): Promise<void> {
  await execFileAsync("pgbench", ["-i", "-s", "1", "-h", socketDir, "-p", String(port), "-U", TENANT.user, TENANT.database]);
  const client = new pg.Client({ host: socketDir, port, ...TENANT });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>("SELECT count(*) AS n FROM pgbench_accounts");
    if (Number(rows[0]?.n) !== ROWS) throw new Error(`pgbench_accounts has ${rows[0]?.n} rows, expected ${ROWS}`);
  } finally {
    await client.end();
  }
}

/** An HTTP target, driven by wrk; any non-2xx answer or connection error fails the run. */
export async function httpRun(wrk: string, label: string, load: HttpLoad): Promise<Summary> {
  const r = await runHttpLoad(wrk, load);
  if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0) {
    throw new Error(`${label}, ${load.connections} connections: ${r.non2xx} non-2xx answers, ${r.errors} errors, ${r.timeouts} timeouts`);
  }
  if (r.requests === 0) throw new Error(`${label}: no completed requests`);
  return { rate: r.rate, p50: r.p50, p99: r.p99, n: r.requests };
}

/** The reference: pgbench with the same SELECT; latencies from its per-transaction log (µs). */
async function pgbenchRun(socketDir: string, port: number, dir: string, clients: number, seconds: number): Promise<Summary> {
  const file = path.join(dir, "select.sql");
  writeFileSync(file, `\\set aid random(1, ${ROWS})\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n`);
  const connection = { PGHOST: socketDir, PGPORT: String(port), PGUSER: TENANT.user, PGDATABASE: TENANT.database };
  const r = await runPgbench({ script: { file }, clients, seconds, logDir: dir, connection, protocol: "simple" });
  return summary(PGBENCH, r.tps, r.latencies);
}

async function wrkVersion(bin: string): Promise<string> {
  // wrk prints its version with a usage error (exit 1) when given -v alone.
  const out = await execFileAsync(bin, ["-v"]).then(({ stdout }) => stdout, (err: { stdout?: string }) => err.stdout ?? "");
  return /^wrk \S+/.exec(out)?.[0] ?? "wrk";
}

const num = (x: number, digits: number) => x.toFixed(digits);
const verdict = (ok: boolean) => (ok ? "met" : "NOT met");

/**
 * Primary-key lookups on one instance through the ccp gateway (HTTP keep-alive),
 * against pgbench over the unix socket (the reference) and postgres-meta's
 * /query (the peer), at concurrency 1 and 16 for a fixed duration each.
 */
export async function gatewayPart({ duration }: PartOptions): Promise<void> {
  const entry = await installPostgresMeta();
  const wrk = await ensureWrk();
  const work = makeTempDir("ccp-bench-gateway-");
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(work, "config"), CCP_LOG_LEVEL: process.env["CCP_LOG_LEVEL"] ?? "warn" };
  let server: RunningServer | undefined;
  let meta: PostgresMeta | undefined;
  let floor: Awaited<ReturnType<typeof startFloor>> | undefined;
  try {
    // Any free ports: another ccpd (a test run) may hold the defaults. A variable, not a literal, so
    // this still compiles against a ccpd without a wire endpoint (no wirePort option).
    const options = { dataDir: path.join(work, "data"), port: 0, wirePort: 0 };
    server = await startServer(resolveServerConfig(options, env));
    const key = server.createdAdminKey;
    if (!key) throw new Error("fresh ccpd created no admin key");
    const created = (await api(server, key, "POST", "/v1/databases", { name: "bench-gateway" })) as { database: { id: string; status: string }; token: string };
    const { id } = created.database;
    if (created.database.status !== "ready") throw new Error(`${id}: created with status ${created.database.status}`);
    const { socketDir, port } = server.driver.endpoint(id);
    await initPgbench(socketDir, port);

    const dbUrl = `postgresql://${TENANT.user}@localhost:${port}/${TENANT.database}?host=${encodeURIComponent(socketDir)}`;
    meta = await PostgresMeta.start(entry, dbUrl, path.join(work, "postgres-meta.log"));
    const ccpUrl = `${server.url}/v1/databases/${id}/query`;
    const ccpHeaders = { authorization: `Bearer ${created.token}` };
    const metaUrl = `${meta.url}/query`;

    const ccpLoad = (connections: number, seconds: number): HttpLoad => ({
      url: ccpUrl,
      headers: ccpHeaders,
      body: `{"sql":${JSON.stringify(SELECT)},"params":[${AID}]}`,
      random: { placeholder: AID, min: 1, max: ROWS },
      connections,
      seconds,
      dir: work,
    });
    const metaLoad = (connections: number, seconds: number): HttpLoad => ({
      url: metaUrl,
      headers: {},
      body: `{"query":${JSON.stringify(SELECT)},"parameters":[${AID}]}`,
      random: { placeholder: AID, min: 1, max: ROWS },
      connections,
      seconds,
      dir: work,
    });

    // Same answer from both HTTP targets before anything is timed (pgbench -i sets every abalance to 0).
    const viaCcp = (await post(ccpUrl, ccpHeaders, { sql: SELECT, params: [42] })) as { rows: unknown[] };
    const viaMeta = (await post(metaUrl, {}, { query: SELECT, parameters: [42] })) as unknown[];
    const expected = JSON.stringify([{ abalance: 0 }]);
    if (JSON.stringify(viaCcp.rows) !== expected) throw new Error(`ccp answered ${JSON.stringify(viaCcp)}`);
    if (JSON.stringify(viaMeta) !== expected) throw new Error(`postgres-meta answered ${JSON.stringify(viaMeta)}`);
    floor = await startFloor(JSON.stringify(viaCcp));
    const floorUrl = floor.url;
    const floorLoad = (connections: number, seconds: number): HttpLoad => ({ ...ccpLoad(connections, seconds), url: floorUrl });

    // Warm-up: JIT, pools, the table in shared buffers; not recorded.
    const warm = Math.min(WARMUP_SECONDS, duration);
    // A warm-up that fails on a loaded machine is retried; it only warms up, so it never ends the bench.
    await retrying("warm-up ccp", () => httpRun(wrk, CCP, ccpLoad(16, warm)));
    await retrying("warm-up pgbench", () => pgbenchRun(socketDir, port, work, 16, warm));
    await retrying("warm-up postgres-meta", () => httpRun(wrk, META, metaLoad(16, warm)));
    await retrying("warm-up node:http", () => httpRun(wrk, FLOOR, floorLoad(16, warm)));
    /** A measured row is retried (3 attempts) before it may fail the part. */
    const measured = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      const r = await retrying(what, fn);
      if (r === undefined) throw new Error(`${what}: every attempt failed (see above)`);
      return r;
    };

    const results = new Map<number, Rows>();
    for (const c of CONCURRENCY) {
      const ccp = await measured(`ccp c=${c}`, () => httpRun(wrk, CCP, ccpLoad(c, duration)));
      const bench = await measured(`pgbench c=${c}`, () => pgbenchRun(socketDir, port, work, c, duration));
      const peer = await measured(`postgres-meta c=${c}`, () => httpRun(wrk, META, metaLoad(c, duration)));
      const hop = await measured(`node:http c=${c}`, () => httpRun(wrk, FLOOR, floorLoad(c, duration)));
      results.set(c, [ccp, bench, peer, hop]);
    }

    console.log(`Postgres ${server.driver.pgVersion}, node ${process.version}, ${os.cpus().length} cores, load average ${os.loadavg()[0]?.toFixed(2)} at start`);
    console.log(`one instance, pgbench_accounts with ${ROWS.toLocaleString("en-US")} rows; random aid per request: ${SELECT}`);
    console.log(`${duration} s per row after a ${warm} s warm-up; HTTP rows: ${await wrkVersion(wrk)} (C, like pgbench), keep-alive,`);
    console.log("one request in flight per connection, -t 2 (-t 1 at concurrency 1); latency: every completed request (HTTP: wrk's histogram; pgbench: its -l log, µs)\n");
    for (const c of CONCURRENCY) {
      const [ccp, bench, peer, hop] = results.get(c) as Rows;
      const row = (label: string, s: Summary) => ({ label, cells: [num(s.rate, 0), num(s.p50, 3), num(s.p99, 3), String(s.n)] });
      console.log(renderGrid(`concurrency ${c}`, ["req/s", "p50 ms", "p99 ms", "requests"], [row(CCP, ccp), row(PGBENCH, bench), row(META, peer), row(FLOOR, hop)]));
      console.log("");
    }

    const lines: string[] = [];
    for (const c of CONCURRENCY) {
      const [ccp, , peer] = results.get(c) as Rows;
      const r = ccp.rate / peer.rate;
      lines.push(`  ccp/postgres-meta throughput, c=${c}: ${num(r, 2)}x (target ≥ ${TARGET_META_RATIO}x): ${verdict(r >= TARGET_META_RATIO)}`);
    }
    for (const c of CONCURRENCY) {
      const [ccp, bench] = results.get(c) as Rows;
      const r = ccp.rate / bench.rate;
      lines.push(`  ccp/pgbench throughput, c=${c}: ${num(r * 100, 1)}% (target ≥ ${TARGET_PGBENCH_RATIO * 100}%): ${verdict(r >= TARGET_PGBENCH_RATIO)}`);
    }
    const [ccp1, bench1, , hop1] = results.get(1) as Rows;
    const gap = ccp1.p50 - bench1.p50;
    lines.push(`  ccp p50 − pgbench p50, c=1: ${num(gap, 3)} ms (target ≤ ${TARGET_P50_GAP_MS} ms): ${verdict(gap <= TARGET_P50_GAP_MS)}`);
    const bound = 1 / (1 / hop1.rate + 1 / bench1.rate);
    lines.push(
      `  bound at c=1 for a gateway that added nothing but its HTTP hop: 1/(1/${num(hop1.rate, 0)} + 1/${num(bench1.rate, 0)}) = ${num(bound, 0)} req/s,` +
        ` ${num((bound / bench1.rate) * 100, 1)}% of pgbench; ccp reaches ${num((ccp1.rate / bound) * 100, 1)}% of that bound`,
    );
    console.log(`targets\n${lines.join("\n")}`);
    console.log(
      `\nnotes: ccp sends $1 as a bind parameter (extended protocol) through its pool of ${server.gateway.settings.poolSize} connections and resets each with DISCARD ALL;` +
        "\n  pgbench -M simple inlines the aid; postgres-meta gets the same $1 + parameters and opens a new Postgres connection per request (its design)." +
        "\n  All clients, ccpd, postgres-meta and Postgres share this machine's cores.",
    );
  } finally {
    await floor?.close();
    await meta?.close();
    await server?.close();
    removeDir(work);
  }
}
