import os from "node:os";
import path from "node:path";
import { Metrics } from "../../packages/server/dist/observability/metrics.js";
import { startCcpdProcess, type CcpdProcess } from "../lib/ccpd-process.ts";
import { which } from "../lib/apt.ts";
import { ensureWrk, type HttpLoad } from "../lib/http-load.ts";
import type { PartOptions } from "../lib/part.ts";
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

const SCRAPED = "ccp, metrics on, scraped every 5 s";
const ON = "ccp, metrics on, not scraped";
const OFF = "ccp, --no-metrics";
/**
 * Two ccpds per side (metrics on, --no-metrics): one ccpd against one other
 * read up to 8% "cost" between two --no-metrics ccpds (same code) in earlier
 * runs, so each side is the mean of two, and the A/A pairs (a against b, same
 * code) show what the method still reads from noise and placement.
 */
const ON_B = `${ON} (b)`;
const OFF_B = `${OFF} (b)`;

interface Variant {
  readonly label: string;
  readonly server: CcpdProcess;
  readonly url: string;
  readonly token: string;
  readonly key: string;
}

/**
 * The hot path's own work, timed alone: what a route's onResponse hook does per
 * request (one counter increment, one histogram observation), in µs. Immune
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

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))] as number;
};

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

/** Scrape /metrics every `ms` until stopped; returns each scrape's time (ms). */
function scrapeLoop(v: Variant, ms: number): { stop(): Promise<number[]> } {
  const times: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = performance.now();
      const res = await fetch(`${v.server.url}/metrics`, { headers: { authorization: `Bearer ${v.key}` } });
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
 * The cost of observability on the gateway's hot path: the same primary-key
 * lookups as the gateway part, against five ccpds, each in a process of its
 * own (own event loop, own CPU accounting): metrics on and scraped every 5 s,
 * two with metrics on and not scraped (the hot path alone), two with
 * --no-metrics; rounds rotate the order.
 */
export async function observabilityPart({ duration }: PartOptions): Promise<void> {
  const wrk = await ensureWrk();
  const work = makeTempDir("ccp-bench-obs-");
  const servers: CcpdProcess[] = [];
  // Pin the ccpds (and the Postgres servers they start, which inherit it) to one
  // core and wrk to the other: on two cores, where the scheduler put wrk against
  // the server moved a round's req/s by ±20%, more than the cost measured.
  const pin = os.cpus().length >= 2 && (await which("taskset")) ? { server: "0", wrk: "1" } : undefined;
  try {
    const variants: Variant[] = [];
    for (const [label, metrics] of [
      [SCRAPED, true],
      [ON, true],
      [ON_B, true],
      [OFF, false],
      [OFF_B, false],
    ] as const) {
      const dir = path.join(work, `variant-${variants.length}`);
      const server = await startCcpdProcess(dir, { metrics, env: { CCP_LOG_LEVEL: process.env["CCP_LOG_LEVEL"] ?? "warn" }, ...(pin ? { cpus: pin.server } : {}) });
      servers.push(server);
      const res = await fetch(`${server.url}/v1/databases`, {
        method: "POST",
        headers: { authorization: `Bearer ${server.key}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "bench-obs" }),
      });
      const created = (await res.json()) as { database: { id: string }; token: string };
      if (res.status !== 201) throw new Error(`POST /v1/databases: HTTP ${res.status} ${JSON.stringify(created)}`);
      // The process driver's layout: the instance's socket is in its run folder.
      await initPgbench(path.join(dir, "data", "instances", created.database.id, "run"), 5432);
      variants.push({ label, server, url: `${server.url}/v1/databases/${created.database.id}/query`, token: created.token, key: server.key });
    }
    const [scraped, on, onB, off, offB] = variants as [Variant, Variant, Variant, Variant, Variant];
    const metricsOff = await fetch(`${off.server.url}/metrics`, { headers: { authorization: `Bearer ${off.key}` } });
    if (metricsOff.status !== 404) throw new Error(`--no-metrics ccpd answered /metrics with ${metricsOff.status}, expected 404`);

    const load = (v: Variant, connections: number, seconds: number): HttpLoad => ({
      url: v.url,
      headers: { authorization: `Bearer ${v.token}` },
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
        // Rotate which goes first, so none always runs right after another.
        const order = [scraped, on, off, onB, offB];
        for (const v of [...order.slice(round % order.length), ...order.slice(0, round % order.length)]) {
          const scraper = v === scraped ? scrapeLoop(v, SCRAPE_EVERY_MS) : undefined;
          const cpu0 = v.server.cpuMicros();
          const r = await httpRun(wrk, v.label, load(v, c, RUN_SECONDS));
          const cpu = v.server.cpuMicros() - cpu0;
          if (scraper) scrapes.push(...(await scraper.stop()));
          const key = `${v.label}\u0000${c}`;
          results.set(key, [...(results.get(key) ?? []), { ...r, cpuUs: cpu / r.n }]);
        }
      }
    }

    console.log(`node ${process.version}, ${os.cpus().length} cores, load average ${os.loadavg()[0]?.toFixed(2)} at start`);
    console.log(`POST /v1/databases/{id}/query, random aid per request: ${SELECT}`);
    console.log(`five ccpds, each in its own process (one database each, pgbench_accounts ${ROWS.toLocaleString("en-US")} rows); wrk, keep-alive; CPU: the ccpd process's own user + system time;`);
    console.log(pin ? `ccpds and their Postgres pinned to CPU ${pin.server}, wrk to CPU ${pin.wrk} (taskset)` : "not pinned (fewer than two cores, or no taskset)");
    console.log(`${rounds} rounds of ${RUN_SECONDS} s per variant and concurrency, order rotated; median round shown; cost: median of the rounds' ratios\n`);
    const lines: string[] = [];
    for (const c of CONCURRENCY) {
      const rows = variants.map((v) => {
        const rounds = results.get(`${v.label}\u0000${c}`) as (Summary & { cpuUs: number })[];
        return {
          label: v.label,
          rate: median(rounds.map((r) => r.rate)),
          p50: median(rounds.map((r) => r.p50)),
          p99: median(rounds.map((r) => r.p99)),
          cpu: median(rounds.map((r) => r.cpuUs)),
          all: rounds.map((r) => r.rate),
          cpus: rounds.map((r) => r.cpuUs),
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
      const [withScrapes, onA, onB2, offA, offB2] = [byLabel(SCRAPED), byLabel(ON), byLabel(ON_B), byLabel(OFF), byLabel(OFF_B)];
      /** Per round: the mean of the two ccpds of a side. */
      const pair = (a: number[], b: number[]) => a.map((x, i) => (x + (b[i] as number)) / 2);
      const onRates = pair(onA.all, onB2.all);
      const offRates = pair(offA.all, offB2.all);
      const onCpus = pair(onA.cpus, onB2.cpus);
      const offCpus = pair(offA.cpus, offB2.cpus);
      const cost = (xs: number[], base: number[]) => median(xs.map((x, i) => 1 - x / (base[i] as number)));
      const cpuCost = (xs: number[], base: number[]) => median(xs.map((x, i) => x / (base[i] as number) - 1));
      const overhead = cost(onRates, offRates);
      const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
      lines.push(
        `  throughput cost of metrics (on, not scraped vs --no-metrics, two ccpds each side), c=${c}: ${pct(overhead)} (target ≤ ${TARGET_OVERHEAD * 100}%): ${overhead <= TARGET_OVERHEAD ? "met" : "NOT met"}`,
        `    ccpd CPU per request, same pairs: ${pct(cpuCost(onCpus, offCpus))}; with a scrape every 5 s (one ccpd): throughput ${pct(cost(withScrapes.all, offRates))}, CPU ${pct(cpuCost(withScrapes.cpus, offCpus))}`,
        `    A/A (same code, b vs a): --no-metrics throughput ${pct(cost(offB2.all, offA.all))}, CPU ${pct(cpuCost(offB2.cpus, offA.cpus))}; metrics on throughput ${pct(cost(onB2.all, onA.all))}, CPU ${pct(cpuCost(onB2.cpus, onA.cpus))} — what the method reads from noise alone`,
      );
    }
    const sorted = [...scrapes].sort((a, b) => a - b);
    const micros = hotPathMicros();
    for (const c of CONCURRENCY) {
      const offCpu = median((results.get(`${OFF}\u0000${c}`) as { cpuUs: number }[]).map((r) => r.cpuUs));
      const share = micros / offCpu;
      lines.push(
        `  hot-path work timed alone: ${micros.toFixed(2)} µs per request = ${(share * 100).toFixed(2)}% of ccpd's CPU per request with --no-metrics (${offCpu.toFixed(0)} µs), c=${c}` +
          ` (target ≤ ${TARGET_OVERHEAD * 100}%): ${share <= TARGET_OVERHEAD ? "met" : "NOT met"}`,
      );
    }
    console.log(`targets\n${lines.join("\n")}`);
    console.log(
      `\nnotes: per request, metrics add one counter increment and one histogram observation (children cached per method, route, status);` +
        `\n  ${scrapes.length} scrapes of /metrics during the "scraped" runs took p50 ${(sorted[Math.floor(sorted.length / 2)] ?? NaN).toFixed(1)} ms, max ${(sorted[sorted.length - 1] ?? NaN).toFixed(1)} ms` +
        " (per-database figures are read from the running instance at most every 5 s)." +
        "\n  The ccpds share this machine's cores with wrk and Postgres: a round's figures move with whatever else runs;" +
        "\n  CPU per request (the ccpd process's user + system time / completed requests, 10 ms ticks) moves far less with other load than req/s does.",
    );
  } finally {
    for (const s of servers) await s.stop();
    removeDir(work);
  }
}
