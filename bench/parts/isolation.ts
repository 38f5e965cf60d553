import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { resolveServerConfig, startServer, type RunningServer } from "../../packages/server/dist/index.js";
import { aptInstall, which } from "../lib/apt.ts";
import { call, timedSelectOne } from "../lib/api.ts";
import type { PartOptions } from "../lib/part.ts";
import { runPgbench, type PgEnv } from "../lib/pgbench.ts";
import { retrying } from "../lib/retry.ts";
import { percentile, prng } from "../lib/stats.ts";
import { renderGrid } from "../lib/table.ts";
import { makeTempDir, removeDir } from "../lib/tmp.ts";

/**
 * Noisy neighbours (issue 15). A victim database answers primary-key lookups
 * over HTTP and over the wire at a steady rate while a neighbour database runs
 * (1) pgbench flat out, (2) memory-hungry sorts, (3) a disk-filling insert loop;
 * each with the neighbour unlimited and with limits on (cpu 0.5, memory 512MiB,
 * storage 1GiB, pids 128). Then what the sandbox costs: pgbench -S TPS, create
 * and wake latency with isolation on ("auto") and off (`CCP_ISOLATION=off`).
 * Every row stands alone: one that fails prints why and the rest go on.
 */

const execFileAsync = promisify(execFile);
const TARGET = { p99Ratio: 1.5, tpsShare: 0.97 } as const;
const PROBE_EVERY_MS = 20;
const LIMITED = { cpu: 0.5, memory: "512MiB", storage: "1GiB", pids: 128 } as const;
const UNLIMITED = { cpu: null, memory: null, storage: null, pids: null, io: null, connections: null } as const;

const ms = (x: number) => `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`;

interface Db {
  readonly id: string;
  readonly token: string;
  readonly url: string;
}

async function create(server: RunningServer, key: string, name: string, limits?: Record<string, unknown>): Promise<Db> {
  const r = (await call(server, key, "POST", "/v1/databases", { name, suspend_after: "never", ...(limits ? { limits } : {}) })) as {
    database: { id: string };
    token: string;
    database_url: string;
  };
  return { id: r.database.id, token: r.token, url: r.database_url };
}

/** libpq variables for pgbench on the instance's own socket (ccpd's OS user maps to any role). */
function socketEnv(server: RunningServer, id: string): PgEnv {
  const { socketDir, port } = server.driver.endpoint(id);
  return { PGHOST: socketDir, PGPORT: String(port), PGUSER: "clusterbase", PGDATABASE: "default" };
}

async function withServer<T>(label: string, isolation: "auto" | "off", warmPool: number, fn: (server: RunningServer, key: string, work: string) => Promise<T>): Promise<T> {
  const work = makeTempDir(`ccp-bench-${label}-`);
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(work, "config"), CCP_LOG_LEVEL: process.env["CCP_LOG_LEVEL"] ?? "warn" };
  const config = resolveServerConfig(
    {
      dataDir: path.join(work, "data"),
      port: 0,
      wirePort: 0,
      backupAt: "off",
      suspendAfter: "never",
      warmPool,
      isolation,
      storageCheckMs: 1_000,
      // "Unlimited" means unlimited here: no server defaults either.
      defaultLimits: { ...UNLIMITED },
    },
    env,
  );
  const server = await startServer(config);
  try {
    const key = server.createdAdminKey;
    if (!key) throw new Error("fresh ccpd created no admin key");
    return await fn(server, key, work);
  } finally {
    await server.close();
    removeDir(work);
  }
}

const VICTIM_ROWS = 100_000;

/** Lookups at a steady rate (one HTTP and one wire every PROBE_EVERY_MS), for `seconds`; latencies per transport. */
async function probe(server: RunningServer, victim: Db, wire: pg.Pool, seconds: number, random: () => number): Promise<{ http: number[]; wire: number[]; errors: number }> {
  const http: number[] = [];
  const wireSamples: number[] = [];
  let errors = 0;
  const inflight: Promise<void>[] = [];
  const end = performance.now() + seconds * 1000;
  for (let next = performance.now(); next < end; next += PROBE_EVERY_MS) {
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
    const id = 1 + Math.floor(random() * VICTIM_ROWS);
    const t0 = performance.now();
    inflight.push(
      fetch(`${server.url}/v1/databases/${victim.id}/query`, {
        method: "POST",
        headers: { authorization: `Bearer ${victim.token}`, "content-type": "application/json" },
        body: JSON.stringify({ sql: "SELECT v FROM kv WHERE id = $1", params: [id] }),
      }).then(
        async (res) => {
          await res.arrayBuffer();
          if (res.status === 200) http.push(performance.now() - t0);
          else errors++;
        },
        () => void errors++,
      ),
      wire.query("SELECT v FROM kv WHERE id = $1", [id]).then(
        () => void wireSamples.push(performance.now() - t0),
        () => void errors++,
      ),
    );
  }
  await Promise.all(inflight);
  return { http, wire: wireSamples, errors };
}

/** A neighbour's workload, run until stopped; errors (its own OOM kills, read-only past its quota) are counted, not fatal. */
interface Workload {
  readonly name: string;
  start(server: RunningServer, neighbour: Db, work: string): { stop(): Promise<string> };
}

function sqlLoop(server: RunningServer, neighbour: Db, clients: number, sql: string[]): { stop(): Promise<string> } {
  let stopping = false;
  let done = 0;
  let failed = 0;
  let lastError = "";
  const loops = Array.from({ length: clients }, async (_, client) => {
    while (!stopping) {
      const c = new pg.Client({ ...pgSocket(server, neighbour.id) });
      c.on("error", () => undefined);
      try {
        await c.connect();
        while (!stopping) {
          for (const s of sql) await c.query(s.replaceAll("${CLIENT}", String(client)));
          done++;
        }
      } catch (err) {
        failed++;
        lastError = (err as Error).message.slice(0, 60);
        await sleep(100);
      } finally {
        await c.end().catch(() => undefined);
      }
    }
  });
  return {
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
      return `${done} done, ${failed} failed${lastError ? ` (${lastError})` : ""}`;
    },
  };
}

function pgSocket(server: RunningServer, id: string): pg.ClientConfig {
  const { socketDir, port } = server.driver.endpoint(id);
  return { host: socketDir, port, user: "clusterbase", database: "default" };
}

const WORKLOADS: readonly Workload[] = [
  {
    name: "pgbench -S flat out (4 clients, niced)",
    start(server, neighbour, work) {
      let stopping = false;
      const runs = (async () => {
        let n = 0;
        while (!stopping) {
          // pgbench itself under nice: a tenant's clients do not run on the database host, only its Postgres does (in its cgroup).
          await runPgbench({ script: { builtin: "select-only" }, clients: 4, seconds: 2, logDir: work, connection: socketEnv(server, neighbour.id), nice: 19 }).then(
            () => n++,
            () => undefined,
          );
        }
        return n;
      })();
      return {
        stop: async () => {
          stopping = true;
          return `${await runs} pgbench runs`;
        },
      };
    },
  },
  {
    name: "memory-hungry sorts (3 clients, work_mem 1GB)",
    start: (server, neighbour) =>
      sqlLoop(server, neighbour, 3, ["SET work_mem = '1GB'", "SELECT count(*) FROM (SELECT md5(g::text) AS h FROM generate_series(1, 3000000) g ORDER BY h) s"]),
  },
  {
    name: "disk-filling inserts (2 clients)",
    start: (server, neighbour) =>
      sqlLoop(server, neighbour, 2, [
        // One client each: no CREATE TABLE IF NOT EXISTS race between the two.
        "CREATE TABLE IF NOT EXISTS fill_${CLIENT} (g int, pad text)",
        "INSERT INTO fill_${CLIENT} SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, 20000) g",
        // Bounded so an unlimited neighbour does not fill this machine's disk: ~0.75 GiB per client, then start over.
        "DO $$ BEGIN IF pg_total_relation_size('fill_${CLIENT}') > 750000000 THEN TRUNCATE fill_${CLIENT}; END IF; END $$",
      ]),
  },
];

interface Row {
  readonly label: string;
  readonly http?: number[];
  readonly wire?: number[];
  readonly note?: string;
}

function victimTable(rows: readonly Row[]): string {
  const idle = rows[0];
  const p = (xs: number[] | undefined, q: number) => (xs && xs.length > 0 ? percentile([...xs].sort((a, b) => a - b), q) : NaN);
  const cells = (r: Row) => {
    const hp99 = p(r.http, 99);
    const wp99 = p(r.wire, 99);
    return [
      ms(p(r.http, 50)),
      ms(hp99),
      idle === r ? "" : `${(hp99 / p(idle?.http, 99)).toFixed(2)}x`,
      ms(p(r.wire, 50)),
      ms(wp99),
      idle === r ? "" : `${(wp99 / p(idle?.wire, 99)).toFixed(2)}x`,
    ];
  };
  const lines: { label: string; cells: string[] }[] = [];
  for (const r of rows) {
    if (!r.http || !r.wire || r.http.length === 0 || r.wire.length === 0) {
      lines.push({ label: r.label, cells: ["failed:", (r.note ?? "no samples").slice(0, 50), "", "", "", ""] });
      continue;
    }
    lines.push({ label: `${r.label} (n=${r.http.length}+${r.wire.length})`, cells: cells(r) });
    if (r.note) lines.push({ label: `    neighbour: ${r.note}`.slice(0, 90), cells: ["", "", "", "", "", ""] });
  }
  return renderGrid("victim lookups", ["HTTP p50", "HTTP p99", "p99/idle", "wire p50", "wire p99", "p99/idle"], lines);
}

async function noisyNeighbours(seconds: number, seed: number): Promise<void> {
  await withServer("isolation", "auto", 0, async (server, key, work) => {
    for (const f of server.databases.isolation()) console.log(`  isolation: ${f.name.padEnd(11)} ${f.enforced ? "in force" : "NOT in force"}: ${f.detail}`);
    const victim = await create(server, key, "victim");
    const neighbour = await create(server, key, "neighbour");
    const setup = new pg.Client(pgSocket(server, victim.id));
    setup.on("error", (err) => console.error(`victim set-up: ${err.message}`));
    await setup.connect();
    await setup.query(`CREATE TABLE kv (id int PRIMARY KEY, v text); INSERT INTO kv SELECT g, md5(g::text) FROM generate_series(1, ${VICTIM_ROWS}) g`);
    await setup.query("VACUUM ANALYZE kv");
    await setup.end();
    const init = await retrying("pgbench -i", async () => {
      await execFileAsync("pgbench", ["-i", "-q", "-s", "10"], { env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...socketEnv(server, neighbour.id) } });
      return true;
    });
    if (init === undefined) console.log("  pgbench -i failed on the neighbour: its rows will fail");
    // The set-up's writes (hundreds of MB through each database's loop-mounted image) are on disk before the
    // first row, so their writeback is not measured as the first neighbour's noise.
    await execFileAsync("sync");
    // A small client-side pool, as an application has: a slow answer does not queue every later lookup behind it.
    const wire = new pg.Pool({ connectionString: victim.url, max: 4 });
    wire.on("error", (err) => console.error(`victim wire session: ${err.message}`));
    const random = prng(seed);
    await probe(server, victim, wire, 2, random); // warm-up: pools filled, plans cached
    const rows: Row[] = [];
    const measure = async (label: string, during?: () => { stop(): Promise<string> }) => {
      const load = during?.();
      try {
        if (load) await sleep(1_000); // the neighbour at full speed before sampling
        const r = await probe(server, victim, wire, seconds, random);
        const note = load ? await load.stop() : undefined;
        rows.push({ label, http: r.http, wire: r.wire, note: [note, r.errors ? `${r.errors} victim errors` : ""].filter(Boolean).join("; ") || undefined });
      } catch (err) {
        await load?.stop().catch(() => "");
        rows.push({ label, note: (err as Error).message.split("\n")[0] });
      }
    };
    await measure("idle");
    for (const w of WORKLOADS) {
      await call(server, key, "PATCH", `/v1/databases/${neighbour.id}/limits`, { limits: UNLIMITED, restart: true }).catch((err: Error) => console.error(err.message));
      await measure(`${w.name}, unlimited`, () => w.start(server, neighbour, work));
      // A full neighbour may be read-only now: the limited run starts from an empty table, as the unlimited one did.
      await call(server, key, "PATCH", `/v1/databases/${neighbour.id}/limits`, { limits: LIMITED, restart: true }).catch((err: Error) => console.error(err.message));
      await measure(`${w.name}, limits on`, () => w.start(server, neighbour, work));
      await dropFill(server, neighbour);
    }
    await wire.end();
    console.log(victimTable(rows));
    console.log(`  limits on: neighbour ${JSON.stringify(LIMITED)}; victim unlimited. Target: p99 with limits on ≤ ${TARGET.p99Ratio}x idle. Seed ${seed}.`);
  });
}

async function dropFill(server: RunningServer, db: Db): Promise<void> {
  const c = new pg.Client(pgSocket(server, db.id));
  c.on("error", () => undefined);
  try {
    await c.connect();
    await c.query("SET default_transaction_read_only = off");
    await c.query("DROP TABLE IF EXISTS fill_0, fill_1");
  } catch {
    // the next row reports what it finds
  } finally {
    await c.end().catch(() => undefined);
  }
}

interface CostFigures {
  tps: number[];
  create: number[];
  wake: number[];
  error?: string;
}

/** Create → first query over HTTP (a pre-started server claimed: the pool refills between creates). */
async function createOnce(server: RunningServer, key: string, name: string): Promise<number> {
  for (let w = 0; w < 300 && server.driver.warmPoolSize < 1; w++) await sleep(10);
  const t0 = performance.now();
  const c = await create(server, key, name);
  const res = await fetch(`${server.url}/v1/databases/${c.id}/query`, {
    method: "POST",
    headers: { authorization: `Bearer ${c.token}`, "content-type": "application/json" },
    body: JSON.stringify({ sql: "SELECT 1" }),
  });
  await res.arrayBuffer();
  const took = performance.now() - t0;
  await call(server, key, "DELETE", `/v1/databases/${c.id}`);
  return took;
}

/** Suspend, then wake → first query over HTTP. */
async function wakeOnce(server: RunningServer, key: string, db: Db): Promise<number> {
  for (let a = 0; ; a++) {
    try {
      await call(server, key, "POST", `/v1/databases/${db.id}/suspend`);
      break;
    } catch (err) {
      if (a > 200 || !/HTTP 409/.test((err as Error).message)) throw err;
      await sleep(10);
    }
  }
  return timedSelectOne(server, db);
}

/**
 * pgbench -S TPS, create → first query and wake → first query, with isolation
 * on and off: both servers run at once and every measurement alternates between
 * them, so load from elsewhere on the machine falls on both alike.
 */
async function sandboxCost(seconds: number, n: number): Promise<void> {
  const on: CostFigures = { tps: [], create: [], wake: [] };
  const off: CostFigures = { tps: [], create: [], wake: [] };
  try {
    await withServer("sandbox-on", "auto", 1, (sOn, kOn, wOn) =>
      withServer("sandbox-off", "off", 1, async (sOff, kOff, wOff) => {
        const sides = [
          { f: on, server: sOn, key: kOn, work: wOn, label: "on" },
          { f: off, server: sOff, key: kOff, work: wOff, label: "off" },
        ] as const;
        const dbs = new Map<string, Db>();
        for (const side of sides) {
          const db = await create(side.server, side.key, "tps");
          dbs.set(side.label, db);
          await execFileAsync("pgbench", ["-i", "-q", "-s", "10"], { env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...socketEnv(side.server, db.id) } });
        }
        // Many short rounds: the two sides of a round run back to back, under the same drift of the machine's other load.
        const rounds = Math.max(8, 2 * seconds);
        for (let r = 0; r < rounds; r++) {
          // Alternate which goes first, too.
          for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
            const db = dbs.get(side.label) as Db;
            const res = await retrying(`pgbench -S (isolation ${side.label})`, () =>
              runPgbench({ script: { builtin: "select-only" }, clients: 2, seconds: 2, logDir: side.work, connection: socketEnv(side.server, db.id) }),
            );
            if (res) side.f.tps.push(res.tps);
          }
        }
        for (let i = -1; i < n; i++) {
          for (const side of i % 2 === 0 ? sides : [...sides].reverse()) {
            const took = await createOnce(side.server, side.key, `c-${side.label}-${i + 1}`);
            if (i >= 0) side.f.create.push(took);
          }
        }
        for (let i = -1; i < n; i++) {
          for (const side of i % 2 === 0 ? sides : [...sides].reverse()) {
            const took = await wakeOnce(side.server, side.key, dbs.get(side.label) as Db);
            if (i >= 0) side.f.wake.push(took);
          }
        }
      }),
    );
  } catch (err) {
    on.error = (err as Error).message.split("\n")[0];
  }
  const med = (xs: number[]) => (xs.length > 0 ? percentile([...xs].sort((x, y) => x - y), 50) : undefined);
  const tOn = med(on.tps);
  const tOff = med(off.tps);
  const p = (xs: number[], q: number) => (xs.length > 0 ? ms(percentile([...xs].sort((a, b) => a - b), q)) : "-");
  const lines = [
    { label: `pgbench -S TPS, median of ${on.tps.length}×2 s (socket)`, cells: [tOn?.toFixed(0) ?? "-", tOff?.toFixed(0) ?? "-", tOn && tOff ? `${((100 * tOn) / tOff).toFixed(1)}%` : "-"] },
    { label: `create → first query p50 (n=${on.create.length})`, cells: [p(on.create, 50), p(off.create, 50), ratio(on.create, off.create, 50)] },
    { label: `create → first query p99`, cells: [p(on.create, 99), p(off.create, 99), ratio(on.create, off.create, 99)] },
    { label: `wake → first query p50 (n=${on.wake.length})`, cells: [p(on.wake, 50), p(off.wake, 50), ratio(on.wake, off.wake, 50)] },
    { label: `wake → first query p99`, cells: [p(on.wake, 99), p(off.wake, 99), ratio(on.wake, off.wake, 99)] },
  ];
  console.log(renderGrid("what the sandbox costs", ["sandbox", "CCP_ISOLATION=off", "on/off"], lines));
  if (on.error) console.log(`  stopped early: ${on.error}`);
  console.log(`  Target: TPS through the sandbox ≥ ${TARGET.tpsShare * 100}% of CCP_ISOLATION=off. Both servers run at once; every measurement alternates between them.`);
}

function ratio(a: number[] | undefined, b: number[] | undefined, q: number): string {
  if (!a?.length || !b?.length) return "-";
  return `${(percentile([...a].sort((x, y) => x - y), q) / percentile([...b].sort((x, y) => x - y), q)).toFixed(2)}x`;
}

export async function isolationPart(options: PartOptions): Promise<void> {
  if (!(await which("pgbench"))) await aptInstall("postgresql-client");
  const seed = Number(process.env["CCP_BENCH_SEED"] ?? Date.now() % 1_000_000);
  await noisyNeighbours(options.duration, seed).catch((err: Error) => console.log(`  noisy neighbours failed: ${err.message.split("\n")[0]} (seed ${seed})`));
  console.log("");
  await sandboxCost(options.duration, Math.min(options.n, 20)).catch((err: Error) => console.log(`  sandbox cost failed: ${err.message.split("\n")[0]}`));
}
