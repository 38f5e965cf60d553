import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { Session } from "node:inspector/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyInstance } from "fastify";
import { resolveServerConfig, startServer, VERSION, type RunningServer } from "../../packages/server/dist/index.js";
import { createApp } from "../../packages/server/dist/api/app.js";
import { AdminAuth } from "../../packages/server/dist/api/admin-auth.js";
import { Metrics } from "../../packages/server/dist/observability/metrics.js";
import { Observability } from "../../packages/server/dist/observability/service.js";
import { adminClientConfig } from "../../packages/server/dist/runtime/backend-socket.js";
import { which } from "../lib/apt.ts";
import { ensureWrk, type HttpLoad } from "../lib/http-load.ts";
import type { PartOptions } from "../lib/part.ts";
import { retrying } from "../lib/retry.ts";
import { renderGrid } from "../lib/table.ts";
import { makeTempDir, removeDir } from "../lib/tmp.ts";
import { httpRun, initPgbench, type Summary } from "./gateway.ts";

const ROWS = 100_000; // pgbench -i -s 1
const SELECT = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
const AID = "%AID%";
const CONCURRENCY = [1, 16] as const;
/**
 * Short runs, many rounds: each round runs every variant for RUN_SECONDS back
 * to back, the order rotated, so drift (other work on the machine, which moves
 * over seconds) hits the variants of a round alike; the cost is the median of
 * the rounds' own ratios. --duration N gives 3N rounds (at least 9).
 */
const RUN_SECONDS = 1;
const roundsFor = (duration: number) => Math.max(9, 3 * duration);
const WARMUP_SECONDS = 2;
/** A Prometheus scrape interval, compressed: /metrics is scraped this often during the "scraped" runs. */
const SCRAPE_EVERY_MS = 5_000;
const TARGET_OVERHEAD = 0.03;
/** Idle time after a scraped run, before the next round. */
const SETTLE_MS = 1_000;

const SCRAPED = "metrics on, scraped every 5 s";
const ON = "metrics on, not scraped";
const OFF = "metrics off (as --no-metrics)";
/** A second metrics-off app: off against off (same code) shows what the method reads from noise alone. */
const OFF_B = `${OFF} (b)`;

interface Variant {
  readonly label: string;
  /** Its HTTP app's address. */
  readonly base: string;
  readonly scraped: boolean;
}

/**
 * The hot path's own work, timed alone: what a route's onResponse hook does per
 * request (a count, a sum and a bucket of the HTTP families), in µs. Immune
 * to the load on the machine in a way req/s over the network is not.
 */
function hotPathMicros(): number {
  const metrics = new Metrics({ gatewayPools: () => [], wireSessions: () => new Map() });
  const observe = metrics.httpObserver("POST", "/v1/databases/:id/query");
  const n = 200_000;
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) observe(200, 0.0005 + (i % 7) * 0.001);
    rounds.push(((performance.now() - t) * 1000) / n);
  }
  return median(rounds);
}

/** Seconds of load under V8's sampling profiler, and its sampling interval (µs). */
const PROFILE_SECONDS = 6;
const PROFILE_INTERVAL_US = 100;

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly children?: readonly number[];
}

/**
 * The share of this process's busy CPU (samples that are not idle) spent on
 * metrics while the metrics-on app serves the gateway load: self time in
 * prom-client and observability/metrics.js, in the app's onResponse hook, and
 * in Fastify's hook runner when it runs onResponse hooks (without hooks Fastify
 * skips it). Measured within one run, so drift on the machine moves both sides
 * alike.
 */
function metricsShare(profile: { nodes: readonly ProfileNode[]; samples: readonly number[]; timeDeltas: readonly number[] }): { share: number; busyMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const underResponseEnd = (id: number): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) if (byId.get(at)?.callFrame.functionName === "onResFinished") return true;
    return false;
  };
  const isMetrics = new Map<number, boolean>();
  const metricsNode = (id: number): boolean => {
    let known = isMetrics.get(id);
    if (known === undefined) {
      const { url } = (byId.get(id) as ProfileNode).callFrame;
      known =
        url.includes("/prom-client/") ||
        url.endsWith("/observability/metrics.js") ||
        ((url.endsWith("/api/app.js") || url.includes("/fastify/lib/hooks.js")) && underResponseEnd(id));
      isMetrics.set(id, known);
    }
    return known;
  };
  let busy = 0;
  let metrics = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    if ((byId.get(id) as ProfileNode).callFrame.functionName === "(idle)") return;
    busy += dt;
    if (metricsNode(id)) metrics += dt;
  });
  return { share: busy > 0 ? metrics / busy : 0, busyMs: busy / 1000 };
}

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))] as number;
};

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

/** Scrape /metrics every `ms` until stopped; returns each scrape's time (ms). */
function scrapeLoop(v: Variant, key: string, ms: number): { stop(): Promise<number[]> } {
  const times: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = performance.now();
      const res = await fetch(`${v.base}/metrics`, { headers: { authorization: `Bearer ${key}` } });
      await res.text();
      if (res.status !== 200) throw new Error(`/metrics: HTTP ${res.status}`);
      times.push(performance.now() - t);
      for (let waited = 0; running && waited < ms; waited += 100) await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return times;
    },
  };
}

/**
 * The cost of observability on the gateway's hot path, within ONE ccpd: four
 * HTTP apps built by createApp on its services, as server.ts builds them, two
 * with metrics on (one of them scraped) and two off (what --no-metrics builds),
 * each on a port of its own, serving the same database through the same
 * gateway pool. Only the apps differ, so what separated two ccpd processes of
 * identical code (placement, JIT, heap, their own Postgres: up to 13% between
 * two in earlier runs) is gone from the comparison; rounds rotate the order.
 * CPU per request: this process's user + system time over the run (only one
 * app is loaded at a time).
 */
export async function observabilityPart({ duration }: PartOptions): Promise<void> {
  const wrk = await ensureWrk();
  const work = makeTempDir("ccp-bench-obs-");
  // ccpd (this process, and the Postgres it starts, which inherits it) on one core and wrk on the other:
  // on two cores, where the scheduler put wrk against the server moved a round's req/s by ±20%.
  const pin = os.cpus().length >= 2 && (await which("taskset")) ? { server: "0", wrk: "1" } : undefined;
  const allCpus = `0-${os.cpus().length - 1}`;
  if (pin) execFileSync("taskset", ["-a", "-p", "-c", pin.server, String(process.pid)], { stdio: "ignore" });
  let server: RunningServer | undefined;
  const apps: FastifyInstance[] = [];
  const observabilities: Observability[] = [];
  try {
    const env = { ...process.env, XDG_CONFIG_HOME: path.join(work, "config"), CCP_LOG_LEVEL: process.env["CCP_LOG_LEVEL"] ?? "warn" };
    server = await startServer(resolveServerConfig({ dataDir: path.join(work, "data"), port: 0, wirePort: 0, backupAt: "off" }, env));
    const s = server;
    if (!s.observability.enabled) throw new Error("this ccpd was started with metrics off");
    const key = s.createdAdminKey as string;
    const { database, token } = await s.databases.create("bench-obs");
    const endpoint = adminClientConfig(s.instances.endpoint(database.id));
    await initPgbench(String(endpoint.host), Number(endpoint.port));

    // What server.ts builds, with metrics on or off (--no-metrics): the same routes, the observability service
    // present, on or off. All four apps are built here alike (ccpd's own app, built with the pino logger itself
    // where these get its Fastify child, is left idle), so the one difference between them is `enabled`.
    const adminAuth = new AdminAuth(s.catalog);
    const buildApp = async (enabled: boolean) => {
      const obs = new Observability({
        catalog: s.catalog,
        driver: s.driver,
        adminAuth,
        enabled,
        sampleEveryMs: 0,
        sources: { gatewayPools: () => s.gateway.poolFigures(), wireSessions: () => s.wire.sessionCounts() },
        log: { warn: () => undefined },
      });
      observabilities.push(obs);
      const app = await createApp({
        databases: s.databases,
        backups: s.backups,
        branches: s.branches,
        adminAuth,
        gateway: s.gateway,
        observability: obs,
        domain: s.config.domain,
        version: VERSION,
        loggerInstance: s.app.log,
        httpLimits: s.config.http,
      });
      apps.push(app);
      await app.listen({ port: 0, host: "127.0.0.1" });
      const address = app.server.address();
      if (!address || typeof address === "string") throw new Error("no address");
      return `http://127.0.0.1:${address.port}`;
    };
    const variants: Variant[] = [
      { label: SCRAPED, base: await buildApp(true), scraped: true },
      { label: ON, base: await buildApp(true), scraped: false },
      { label: OFF, base: await buildApp(false), scraped: false },
      { label: OFF_B, base: await buildApp(false), scraped: false },
    ];
    const [scraped, on, off] = variants as [Variant, Variant, Variant, Variant];
    const metricsOff = await fetch(`${off.base}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    if (metricsOff.status !== 404) throw new Error(`the metrics-off app answered /metrics with ${metricsOff.status}, expected 404`);

    const load = (v: Variant, connections: number, seconds: number): HttpLoad => ({
      url: `${v.base}/v1/databases/${database.id}/query`,
      headers: { authorization: `Bearer ${token}` },
      body: `{"sql":${JSON.stringify(SELECT)},"params":[${AID}]}`,
      random: { placeholder: AID, min: 1, max: ROWS },
      connections,
      seconds,
      dir: work,
      ...(pin ? { cpus: pin.wrk } : {}),
    });

    const warm = Math.min(WARMUP_SECONDS, duration);
    const rounds = roundsFor(duration);
    for (const v of variants) await httpRun(wrk, v.label, load(v, 16, warm));

    /** Each round's figures, with this process's CPU time (user + system) per completed request, µs. */
    const results = new Map<string, (Summary & { cpuUs: number })[]>();
    const scrapes: number[] = [];
    for (const c of CONCURRENCY) {
      for (let round = 0; round < rounds; round++) {
        // Rotate which goes first, so none always runs right after another. The scraped run comes last, then a
        // pause: what a scrape sets going in ccpd and Postgres would otherwise land on whichever variant follows it
        // (in an earlier run, always "on, not scraped": 20% below the scraped run of the same app).
        const order = variants.filter((v) => !v.scraped);
        for (const v of [...order.slice(round % order.length), ...order.slice(0, round % order.length), scraped]) {
          const scraper = v.scraped ? scrapeLoop(v, key, SCRAPE_EVERY_MS) : undefined;
          // A run that fails is retried (a round's pair needs both sides); one that fails every time ends the part.
          const measured = await retrying(`${v.label}, c=${c}, round ${round + 1}`, async () => {
            const cpu0 = process.cpuUsage();
            const run = await httpRun(wrk, v.label, load(v, c, RUN_SECONDS));
            return { run, cpu: process.cpuUsage(cpu0) };
          });
          if (!measured) {
            await scraper?.stop().catch(() => undefined);
            throw new Error(`${v.label}, c=${c}: a run failed three times (see above)`);
          }
          const { run: r, cpu } = measured;
          if (scraper) {
            scrapes.push(...(await scraper.stop()));
            await sleep(SETTLE_MS);
          }
          const k = `${v.label}\u0000${c}`;
          results.set(k, [...(results.get(k) ?? []), { ...r, cpuUs: (cpu.user + cpu.system) / r.n }]);
        }
      }
    }

    console.log(`node ${process.version}, ${os.cpus().length} cores, load average ${os.loadavg()[0]?.toFixed(2)} at start`);
    console.log(`POST /v1/databases/{id}/query, random aid per request: ${SELECT}`);
    console.log(`one ccpd, four HTTP apps built as server.ts builds them (two with metrics on, two off), one database (pgbench_accounts ${ROWS.toLocaleString("en-US")} rows) behind the one gateway;`);
    console.log("wrk, keep-alive; CPU: this ccpd process's user + system time per request (one app loaded at a time)");
    console.log(pin ? `ccpd and its Postgres pinned to CPU ${pin.server}, wrk to CPU ${pin.wrk} (taskset)` : "not pinned (fewer than two cores, or no taskset)");
    console.log(`${rounds} rounds of ${RUN_SECONDS} s per variant and concurrency, order rotated (the scraped run last, then ${SETTLE_MS / 1000} s idle); median round shown; cost: median of the rounds' ratios\n`);
    const lines: string[] = [];
    for (const c of CONCURRENCY) {
      const rows = variants.map((v) => {
        const rs = results.get(`${v.label}\u0000${c}`) as (Summary & { cpuUs: number })[];
        return {
          label: v.label,
          rate: median(rs.map((r) => r.rate)),
          p50: median(rs.map((r) => r.p50)),
          p99: median(rs.map((r) => r.p99)),
          cpu: median(rs.map((r) => r.cpuUs)),
          all: rs.map((r) => r.rate),
          cpus: rs.map((r) => r.cpuUs),
        };
      });
      console.log(
        renderGrid(
          `concurrency ${c}`,
          ["req/s", "p50 ms", "p99 ms", "CPU µs/req", "rounds' req/s p25–p75"],
          rows.map((r) => ({ label: r.label, cells: [r.rate.toFixed(0), r.p50.toFixed(3), r.p99.toFixed(3), r.cpu.toFixed(1), `${quantile(r.all, 0.25).toFixed(0)}–${quantile(r.all, 0.75).toFixed(0)}`] })),
        ),
      );
      console.log("");
      const byLabel = (label: string) => rows.find((r) => r.label === label) as (typeof rows)[number];
      const [withScrapes, onRow, offA, offB] = [byLabel(SCRAPED), byLabel(ON), byLabel(OFF), byLabel(OFF_B)];
      const cost = (xs: number[], base: number[]) => median(xs.map((x, i) => 1 - x / (base[i] as number)));
      const cpuCost = (xs: number[], base: number[]) => median(xs.map((x, i) => x / (base[i] as number) - 1));
      const overhead = cost(onRow.all, offA.all);
      const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
      lines.push(
        `  throughput cost of metrics (on, not scraped vs off, same ccpd), c=${c}: ${pct(overhead)} (target ≤ ${TARGET_OVERHEAD * 100}%): ${overhead <= TARGET_OVERHEAD ? "met" : "NOT met"}`,
        `    ccpd CPU per request, same pairs: ${pct(cpuCost(onRow.cpus, offA.cpus))}; scraped every 5 s: throughput ${pct(cost(withScrapes.all, offA.all))}, CPU ${pct(cpuCost(withScrapes.cpus, offA.cpus))}`,
        `    A/A (off b vs off, same code): throughput ${pct(cost(offB.all, offA.all))}, CPU ${pct(cpuCost(offB.cpus, offA.cpus))} — what the method reads from noise alone`,
      );
    }
    // The metrics-on app under the c=16 load once more, this time under V8's sampling profiler.
    const profiled = await retrying("CPU profile of the metrics-on app", async () => {
      const session = new Session();
      session.connect();
      try {
        await session.post("Profiler.enable");
        await session.post("Profiler.setSamplingInterval", { interval: PROFILE_INTERVAL_US });
        await session.post("Profiler.start");
        await httpRun(wrk, `${ON} (profiled)`, load(on, 16, PROFILE_SECONDS));
        const { profile } = await session.post("Profiler.stop");
        // (A failed run leaves the profiler to the disconnect below, which ends it.)
        return metricsShare(profile as unknown as Parameters<typeof metricsShare>[0]);
      } finally {
        session.disconnect();
      }
    });
    lines.push(
      profiled
        ? `  metrics' share of ccpd's CPU in a CPU profile (metrics on, c=16, ${PROFILE_SECONDS} s, ${profiled.busyMs.toFixed(0)} ms busy): ${(profiled.share * 100).toFixed(2)}% (target ≤ ${TARGET_OVERHEAD * 100}%): ${profiled.share <= TARGET_OVERHEAD ? "met" : "NOT met"}`
        : "  metrics' share of ccpd's CPU in a CPU profile: failed (see stderr)",
    );
    const sorted = [...scrapes].sort((a, b) => a - b);
    const micros = hotPathMicros();
    for (const c of CONCURRENCY) {
      const offCpu = median((results.get(`${OFF}\u0000${c}`) as { cpuUs: number }[]).map((r) => r.cpuUs));
      const share = micros / offCpu;
      lines.push(
        `  hot-path work timed alone: ${micros.toFixed(2)} µs per request = ${(share * 100).toFixed(2)}% of ccpd's CPU per request with metrics off (${offCpu.toFixed(0)} µs), c=${c}` +
          ` (target ≤ ${TARGET_OVERHEAD * 100}%): ${share <= TARGET_OVERHEAD ? "met" : "NOT met"}`,
      );
    }
    console.log(`targets\n${lines.join("\n")}`);
    console.log(
      `\nnotes: per request, metrics add one observation (a count, a sum and a bucket, added by hand; prom-client formats them at scrape time);` +
        `\n  ${scrapes.length} scrapes of /metrics during the "scraped" runs took p50 ${(sorted[Math.floor(sorted.length / 2)] ?? NaN).toFixed(1)} ms, max ${(sorted[sorted.length - 1] ?? NaN).toFixed(1)} ms` +
        " (per-database figures are read from the running instance at most every 5 s)." +
        "\n  ccpd shares this machine's cores with wrk and Postgres: a round's figures move with whatever else runs;" +
        "\n  the CPU figures include Node's own threads (GC) and this bench's bookkeeping, alike for every variant;" +
        `\n  the profile's share: self time in prom-client, observability/metrics.js, the onResponse hook and Fastify's runner of it, over this process's non-idle samples (V8's sampler every ${PROFILE_INTERVAL_US} µs).`,
    );
  } finally {
    for (const app of apps) await app.close().catch(() => undefined);
    for (const obs of observabilities) obs.close();
    await server?.close();
    if (pin) execFileSync("taskset", ["-a", "-p", "-c", allCpus, String(process.pid)], { stdio: "ignore" });
    removeDir(work);
  }
}
