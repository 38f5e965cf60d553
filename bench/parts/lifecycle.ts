import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { resolvePgBinaries, resolveServerConfig, startServer, type RunningServer } from "../../packages/server/dist/index.js";
import { resolveRunAs } from "../../packages/server/dist/runtime/process/system-user.js";
import { call, timedSelectOne } from "../lib/api.ts";
import type { PartOptions } from "../lib/part.ts";
import { PlainPostgres, type Instance } from "../lib/plain-postgres.ts";
import { percentile } from "../lib/stats.ts";
import { renderGrid } from "../lib/table.ts";
import { makeTempDir, removeDir } from "../lib/tmp.ts";

/**
 * Databases that sleep and wake (issue 14): create → first query with the warm
 * pool, without it, and initdb + pg_ctl; wake → first query through the wire
 * endpoint and HTTP against `pg_ctl start -w` of the same kind of data dir;
 * density (memory and CPU of N databases suspended and awake).
 * Each row is measured on its own: one that fails prints why and the rest go on.
 */

const WAKES_MIN = 20;
const TARGET = { createP50: 50, wakeP50: 150, wakeP99: 500, cpuShare: 0.01, pssMiB: 1 } as const;
const COLUMNS = ["p50", "p95", "p99", "max"] as const;

type Samples = { readonly label: string; readonly samples: number[]; readonly stopped?: string } | { readonly label: string; readonly error: string };

const ms = (x: number) => `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`;

function stats(samples: readonly number[]): Record<(typeof COLUMNS)[number], number> {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? NaN };
}

/** Rows plus "ratio" rows (each measured row against the reference, the last one), p50/p95/p99/max. */
function table(title: string, rows: readonly Samples[]): string {
  const ref = rows[rows.length - 1];
  const refStats = ref && "samples" in ref && ref.samples.length > 0 ? stats(ref.samples) : undefined;
  const lines: { label: string; cells: string[] }[] = [];
  for (const row of rows) {
    if ("error" in row || row.samples.length === 0) {
      lines.push({ label: row.label, cells: ["failed:", ("error" in row ? row.error : "no samples").slice(0, 60), "", ""] });
      continue;
    }
    const s = stats(row.samples);
    lines.push({ label: `${row.label} (n=${row.samples.length})`, cells: COLUMNS.map((c) => ms(s[c])) });
    if (row.stopped) lines.push({ label: `  stopped early: ${row.stopped.slice(0, 70)}`, cells: ["", "", "", ""] });
  }
  if (refStats && ref) {
    for (const row of rows.slice(0, -1)) {
      if (!("samples" in row) || row.samples.length === 0) continue;
      const s = stats(row.samples);
      lines.push({ label: `ratio ${row.label} / ${ref.label}`, cells: COLUMNS.map((c) => `${(s[c] / refStats[c]).toFixed(2)}x`) });
    }
  }
  return renderGrid(title, COLUMNS, lines);
}

async function measure(label: string, fn: (samples: number[]) => Promise<void>): Promise<Samples> {
  const samples: number[] = [];
  try {
    await fn(samples);
    return { label, samples };
  } catch (err) {
    const message = (err as Error).message.split("\n")[0] ?? "error";
    return samples.length > 0 ? { label, samples, stopped: message } : { label, error: message };
  }
}

interface Created {
  readonly id: string;
  readonly token: string;
  readonly url: string;
}

async function create(server: RunningServer, key: string, name: string, suspendAfter = "never"): Promise<Created> {
  const r = (await call(server, key, "POST", "/v1/databases", { name, suspend_after: suspendAfter })) as { database: { id: string }; token: string; database_url: string };
  return { id: r.database.id, token: r.token, url: r.database_url };
}

/** The tenant's first query over the instance's socket (what the create bench does). */
async function socketQuery(server: RunningServer, id: string): Promise<void> {
  const { socketDir, port } = server.driver.endpoint(id);
  const c = new pg.Client({ host: socketDir, port, user: "clusterbase", database: "default" });
  await c.connect();
  try {
    await c.query("SELECT 1");
  } finally {
    await c.end();
  }
}

async function withServer<T>(label: string, options: { warmPool: number; suspendAfter?: string }, fn: (server: RunningServer, key: string) => Promise<T>): Promise<T> {
  const work = makeTempDir(`ccp-bench-${label}-`);
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(work, "config"), CCP_LOG_LEVEL: process.env["CCP_LOG_LEVEL"] ?? "warn" };
  const server = await startServer(resolveServerConfig({ dataDir: path.join(work, "data"), port: 0, wirePort: 0, backupAt: "off", suspendAfter: options.suspendAfter ?? "never", warmPool: options.warmPool }, env));
  try {
    const key = server.createdAdminKey;
    if (!key) throw new Error("fresh ccpd created no admin key");
    return await fn(server, key);
  } finally {
    await server.close();
    removeDir(work);
  }
}

async function waitUntil(check: () => boolean, boundMs = 30_000): Promise<void> {
  const until = Date.now() + boundMs;
  while (!check()) {
    if (Date.now() > until) throw new Error("timed out");
    await sleep(10);
  }
}

// --- create → first query ---

async function createRows(n: number): Promise<Samples[]> {
  const pooled = await measure("ccp, warm pool", (samples) =>
    withServer("pool", { warmPool: 2 }, async (server, key) => {
      for (let i = -1; i < n; i++) {
        // A create that does not outrun the pool: it refills between creates (a fresh server ~0.2 s).
        await waitUntil(() => server.driver.warmPoolSize >= 1);
        const t0 = performance.now();
        const db = await create(server, key, `pool-${i + 1}`);
        await socketQuery(server, db.id);
        if (i >= 0) samples.push(performance.now() - t0);
        await call(server, key, "DELETE", `/v1/databases/${db.id}`);
      }
    }),
  );
  const copy = await measure("ccp, no pool (spare copy + start)", (samples) =>
    withServer("nopool", { warmPool: 0 }, async (server, key) => {
      for (let i = -1; i < n; i++) {
        await sleep(300); // let the spare copies refill, as the pool row does
        const t0 = performance.now();
        const db = await create(server, key, `copy-${i + 1}`);
        await socketQuery(server, db.id);
        if (i >= 0) samples.push(performance.now() - t0);
        await call(server, key, "DELETE", `/v1/databases/${db.id}`);
      }
    }),
  );
  const runAs = resolveRunAs();
  const plain = new PlainPostgres(resolvePgBinaries(), runAs);
  const reference = await measure("initdb + pg_ctl start -w + query", async (samples) => {
    try {
      for (let i = -1; i < n; i++) {
        const t0 = performance.now();
        const inst = await plain.create();
        await plainQuery(inst);
        if (i >= 0) samples.push(performance.now() - t0);
        await plain.destroy(inst);
      }
    } finally {
      await plain.close();
    }
  });
  return [pooled, copy, reference];
}

function plainUser(): string {
  return resolveRunAs()?.name ?? os.userInfo().username;
}

async function plainQuery(inst: Instance): Promise<void> {
  const c = new pg.Client({ host: inst.run, port: 5432, user: plainUser(), database: "postgres" });
  await c.connect();
  try {
    await c.query("SELECT 1");
  } finally {
    await c.end();
  }
}

// --- wake → first query ---

async function wakeRows(wakes: number): Promise<Samples[]> {
  return withServer("wake", { warmPool: 0 }, async (server, key) => {
    const db = await create(server, key, "sleeper");
    // A wire session's lease is released when ccpd sees the client's close: a suspend right after may find it still open (409).
    const suspend = async () => {
      for (let i = 0; ; i++) {
        try {
          return await call(server, key, "POST", `/v1/databases/${db.id}/suspend`);
        } catch (err) {
          if (i > 200 || !/HTTP 409/.test((err as Error).message)) throw err;
          await sleep(10);
        }
      }
    };
    const wire = await measure("ccp wire (new connection)", async (samples) => {
      for (let i = -1; i < wakes; i++) {
        await suspend();
        const t0 = performance.now();
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        await c.query("SELECT 1");
        if (i >= 0) samples.push(performance.now() - t0);
        await c.end();
      }
    });
    const http = await measure("ccp HTTP /query", async (samples) => {
      for (let i = -1; i < wakes; i++) {
        await suspend();
        const ms = await timedSelectOne(server, db);
        if (i >= 0) samples.push(ms);
      }
    });
    const plain = new PlainPostgres(resolvePgBinaries(), resolveRunAs());
    const reference = await measure("pg_ctl start -w + query", async (samples) => {
      try {
        const inst = await plain.create();
        for (let i = -1; i < wakes; i++) {
          await plain.stop(inst);
          const t0 = performance.now();
          await plain.start(inst);
          await plainQuery(inst);
          if (i >= 0) samples.push(performance.now() - t0);
        }
      } finally {
        await plain.close();
      }
    });
    return [wire, http, reference];
  });
}

// --- density ---

interface Proc {
  readonly pid: number;
  readonly ppid: number;
  readonly cwd: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      let cwd = "";
      try {
        cwd = readlinkSync(`/proc/${name}/cwd`);
      } catch {
        // not readable
      }
      out.push({ pid: Number(name), ppid, cwd });
    } catch {
      // gone
    }
  }
  return out;
}

/** Descendants of this process (ccpd runs in it), grouped: instances vs ccpd's own Postgres (catalog, warm pool). */
function tree(instancesDir: string, ids: ReadonlySet<string>): { instance: number[]; platform: number[] } {
  const all = processes();
  const children = new Map<number, Proc[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const instance: number[] = [];
  const platform: number[] = [];
  const visit = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      const rel = path.relative(instancesDir, c.cwd).split(path.sep)[0] ?? "";
      (ids.has(rel) || ids.has(resolveLinkName(instancesDir, rel, ids)) ? instance : platform).push(c.pid);
      visit(c.pid);
    }
  };
  visit(process.pid);
  return { instance, platform };
}

/** A claimed warm-pool server runs in `.pool-…`, which `db-…` links to. */
function resolveLinkName(instancesDir: string, rel: string, ids: ReadonlySet<string>): string {
  if (!rel.startsWith(".pool-")) return rel;
  for (const id of ids) {
    try {
      if (readlinkSync(path.join(instancesDir, id)) === rel) return id;
    } catch {
      // not a link
    }
  }
  return rel;
}

function pssKiB(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

const TICK = 100; // USER_HZ on Linux

/** utime + stime of a process in clock ticks; undefined once it is gone. */
function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

/** CPU seconds used by `pids` between two readings (a process that ended meanwhile counts up to its last reading: nothing). */
function cpuDelta(before: Map<number, number>, pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const a = before.get(pid);
    const b = cpuTicks(pid);
    if (a !== undefined && b !== undefined && b >= a) ticks += b - a;
  }
  return ticks / TICK;
}

function cpuReadings(pids: readonly number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of pids) {
    const t = cpuTicks(pid);
    if (t !== undefined) m.set(pid, t);
  }
  return m;
}

interface Footprint {
  readonly ccpdMiB: number;
  readonly platformMiB: number;
  readonly instancesMiB: number;
  readonly instanceProcesses: number;
  readonly ccpdCpu: number;
  readonly platformCpu: number;
  readonly instancesCpu: number;
}

/** PSS now, and CPU (share of one core) over `seconds`. */
async function footprint(instancesDir: string, ids: ReadonlySet<string>, seconds: number): Promise<Footprint> {
  const t = tree(instancesDir, ids);
  const mem = (pids: number[]) => pids.reduce((s, p) => s + pssKiB(p), 0) / 1024;
  const c0 = { self: process.cpuUsage(), platform: cpuReadings(t.platform), instances: cpuReadings(t.instance) };
  const w0 = performance.now();
  await sleep(seconds * 1000);
  const wall = (performance.now() - w0) / 1000;
  const self = process.cpuUsage(c0.self);
  return {
    ccpdMiB: pssKiB(process.pid) / 1024,
    platformMiB: mem(t.platform),
    instancesMiB: mem(t.instance),
    instanceProcesses: t.instance.length,
    ccpdCpu: (self.user + self.system) / 1e6 / wall,
    platformCpu: cpuDelta(c0.platform, t.platform) / wall,
    instancesCpu: cpuDelta(c0.instances, t.instance) / wall,
  };
}

async function density(n: number, seconds: number): Promise<string> {
  return withServer("density", { warmPool: 2 }, async (server, key) => {
    const instancesDir = path.join(server.config.dataDir, "instances");
    const ids = new Set<string>();
    // Every figure with the warm pool full, so "beyond ccpd" compares like with like.
    const poolFull = () => waitUntil(() => server.driver.warmPoolSize >= 2, 120_000);
    await poolFull();
    const empty = await footprint(instancesDir, ids, seconds);
    for (let i = 0; i < n; i++) ids.add((await create(server, key, `dense-${i}`)).id);
    await poolFull();
    const awake = await footprint(instancesDir, ids, seconds);
    for (const id of ids) await call(server, key, "POST", `/v1/databases/${id}/suspend`);
    await poolFull();
    const asleep = await footprint(instancesDir, ids, seconds);
    const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
    const mib = (x: number) => `${x.toFixed(1)} MiB`;
    const row = (label: string, f: Footprint) => {
      const beyondMiB = f.ccpdMiB + f.platformMiB + f.instancesMiB - (empty.ccpdMiB + empty.platformMiB);
      const beyondCpu = f.ccpdCpu + f.platformCpu + f.instancesCpu - (empty.ccpdCpu + empty.platformCpu);
      return {
        label,
        cells: [mib(f.ccpdMiB), mib(f.platformMiB), `${mib(f.instancesMiB)} / ${f.instanceProcesses}p`, pct(f.ccpdCpu + f.platformCpu), pct(f.instancesCpu), mib(beyondMiB / Math.max(1, n)), pct(beyondCpu / Math.max(1, n)), pct(beyondCpu)],
      };
    };
    const lines = [
      { label: "ccpd alone (no database)", cells: [mib(empty.ccpdMiB), mib(empty.platformMiB), "-", pct(empty.ccpdCpu + empty.platformCpu), "-", "-", "-", "-"] },
      row(`${n} databases awake`, awake),
      row(`${n} databases suspended`, asleep),
    ];
    const perDbMiB = (asleep.ccpdMiB + asleep.platformMiB + asleep.instancesMiB - (empty.ccpdMiB + empty.platformMiB)) / Math.max(1, n);
    const allCpu = asleep.ccpdCpu + asleep.platformCpu + asleep.instancesCpu - (empty.ccpdCpu + empty.platformCpu);
    return [
      renderGrid(
        `density, PSS now and CPU over ${seconds} s (one core = 100%)`,
        ["ccpd PSS", "catalog+pool PSS", "instances PSS", "ccpd+pg CPU", "inst. CPU", "per db MiB", "per db CPU", "all dbs CPU"],
        lines,
      ),
      `target: ${n} suspended databases ≤ ${pct(TARGET.cpuShare)} of one core together and ≤ ${TARGET.pssMiB} MiB each beyond ccpd: ` +
        `${allCpu <= TARGET.cpuShare ? "met" : "NOT met"} (${pct(allCpu)}), ${perDbMiB <= TARGET.pssMiB ? "met" : "NOT met"} (${perDbMiB.toFixed(2)} MiB)`,
      "(ccpd runs inside the bench process here, so its PSS includes the bench's own Node heap.)",
    ].join("\n");
  });
}

export async function lifecyclePart({ n, duration }: PartOptions): Promise<void> {
  const wakes = Math.max(WAKES_MIN, n);
  const seconds = Math.max(30, duration);
  console.log(`node ${process.version}, ${os.cpus().length} cores, load average ${os.loadavg()[0]?.toFixed(2)} at start; sequential, one warm-up each\n`);

  const creates = await createRows(n);
  console.log(table("create → first query", creates));
  const pool = creates[0];
  if (pool && "samples" in pool && pool.samples.length > 0) {
    const p50 = stats(pool.samples).p50;
    console.log(`target: create → first query with the pool p50 ≤ ${TARGET.createP50} ms: ${p50 <= TARGET.createP50 ? "met" : "NOT met"} (p50 ${ms(p50)})`);
  }
  console.log("");

  try {
    const rows = await wakeRows(wakes);
    console.log(table("wake → first query", rows));
    for (const row of rows.slice(0, 2)) {
      if (!("samples" in row) || row.samples.length === 0) continue;
      const s = stats(row.samples);
      const ok = s.p50 <= TARGET.wakeP50 && s.p99 <= TARGET.wakeP99;
      console.log(`target ${row.label}: p50 ≤ ${TARGET.wakeP50} ms, p99 ≤ ${TARGET.wakeP99} ms: ${ok ? "met" : "NOT met"} (p50 ${ms(s.p50)}, p99 ${ms(s.p99)})`);
    }
  } catch (err) {
    console.log(`wake → first query: failed: ${(err as Error).message}`);
  }
  console.log("");

  try {
    console.log(await density(n, seconds));
  } catch (err) {
    console.log(`density: failed: ${(err as Error).message}`);
  }
}
