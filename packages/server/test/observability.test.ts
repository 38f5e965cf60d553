import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import parsePrometheusTextFormat, { type PromFamily } from "parse-prometheus-text-format";
import { Counter, Histogram, Registry } from "prom-client";
import { pino } from "pino";
import { resolveServerConfig, startServer, type LogEntry, type RunningServer, type StatementInsight } from "../src/index.js";
import { Metrics } from "../src/observability/metrics.js";
import { connectInstance } from "./support/instance-sql.js";
import { poll } from "./support/poll.js";

const eventually = <T>(what: string, fn: () => Promise<T | undefined>) => poll(what, fn, { deadlineMs: 20_000, everyMs: 100 });

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((rel) => path.join(dir, rel))
    .filter((p) => {
      try {
        return statSync(p).isFile();
      } catch {
        return false;
      }
    });
}

describe("observability: metrics, logs, insights", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "ccp-obs-"));
  let server: RunningServer;
  let adminKey: string;
  /** Everything ccpd logged (pino), to check that no secret is in it. */
  let ccpdLog = "";
  let a: { id: string; token: string; password: string };
  let b: { id: string; token: string; password: string };

  before(async () => {
    const config = resolveServerConfig({ dataDir: path.join(root, "data"), port: 0, wirePort: 0 }, { ...process.env, XDG_CONFIG_HOME: path.join(root, "config") });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        ccpdLog += chunk.toString();
        done();
      },
    });
    // Readings are never reused and never taken in the background: each scrape reads the instances.
    server = await startServer({ ...config, metrics: { enabled: true, cacheMs: 0, sampleEveryMs: 0 } }, { logger: pino({ level: "debug" }, sink) });
    adminKey = server.createdAdminKey as string;
    const ca = await server.databases.create("obs-a");
    const cb = await server.databases.create("obs-b");
    a = { id: ca.database.id, token: ca.token, password: ca.password };
    b = { id: cb.database.id, token: cb.token, password: cb.password };
  });
  after(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  const admin = () => ({ authorization: `Bearer ${adminKey}` });

  async function get(urlPath: string, headers: Record<string, string> = admin()) {
    const res = await fetch(`${server.url}${urlPath}`, { headers });
    return { status: res.status, text: await res.text(), type: res.headers.get("content-type") ?? "" };
  }

  async function scrape(headers: Record<string, string> = admin()): Promise<PromFamily[]> {
    const res = await get("/metrics", headers);
    assert.equal(res.status, 200, res.text);
    assert.match(res.type, /^text\/plain; version=0\.0\.4/);
    return parsePrometheusTextFormat(res.text);
  }

  function value(families: PromFamily[], name: string, labels: Record<string, string>): number | undefined {
    const family = families.find((f) => f.name === name);
    const sample = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
    if (!sample) return undefined;
    return Number(sample.value ?? sample.count);
  }

  async function sql(db: { id: string; token: string }, endpoint: "query" | "transaction", body: unknown) {
    const res = await fetch(`${server.url}/v1/databases/${db.id}/${endpoint}`, {
      method: "POST",
      headers: { authorization: `Bearer ${db.token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  async function logs(db: { id: string }, query = "since=15m", headers: Record<string, string> = admin()): Promise<LogEntry[]> {
    const res = await get(`/v1/databases/${db.id}/logs?${query}`, headers);
    assert.equal(res.status, 200, res.text);
    return (JSON.parse(res.text) as { entries: LogEntry[] }).entries;
  }

  async function insights(db: { id: string }, query: string, headers: Record<string, string> = admin()) {
    const res = await get(`/v1/databases/${db.id}/insights?${query}`, headers);
    return { status: res.status, statements: res.status === 200 ? (JSON.parse(res.text) as { statements: StatementInsight[] }).statements : [], text: res.text };
  }

  it("serves the Prometheus text format, which a Prometheus parser reads, with ccpd's and postgres_exporter's families", async () => {
    const families = await scrape();
    const byName = new Map(families.map((f) => [f.name, f]));
    for (const [name, type] of [
      ["ccpd_http_requests_total", "COUNTER"],
      ["ccpd_http_request_duration_seconds", "HISTOGRAM"],
      ["ccpd_gateway_pool_connections", "GAUGE"],
      ["ccpd_wire_sessions", "GAUGE"],
      ["ccpd_databases_created_total", "COUNTER"],
      ["ccpd_instance_wakes_total", "COUNTER"],
      ["ccpd_instance_suspends_total", "COUNTER"],
      ["ccpd_backups_total", "COUNTER"],
      ["ccpd_instance_restarts_total", "COUNTER"],
      ["pg_up", "GAUGE"],
      ["pg_stat_database_xact_commit", "COUNTER"],
      ["pg_stat_database_xact_rollback", "COUNTER"],
      ["pg_stat_database_blks_hit", "COUNTER"],
      ["pg_stat_database_blks_read", "COUNTER"],
      ["pg_stat_database_deadlocks", "COUNTER"],
      ["pg_stat_database_temp_bytes", "COUNTER"],
      ["pg_stat_activity_count", "GAUGE"],
      ["pg_database_size_bytes", "GAUGE"],
      ["pg_settings_max_connections", "GAUGE"],
      ["ccp_wal_archive_lag_bytes", "GAUGE"],
    ] as const) {
      assert.equal(byName.get(name)?.type, type, `${name} should be a ${type}`);
    }
    assert.equal(value(families, "ccpd_databases_created_total", {}), 2);
    for (const db of [a, b]) {
      assert.equal(value(families, "pg_up", { database_id: db.id }), 1);
      assert.ok((value(families, "pg_database_size_bytes", { database_id: db.id, datname: "default" }) ?? 0) > 0);
      assert.equal(value(families, "pg_stat_activity_count", { database_id: db.id, datname: "default", state: "idle in transaction" }), 0);
    }
    const up = byName.get("pg_up")?.metrics.find((m) => m.labels?.["database_id"] === a.id);
    assert.equal(up?.labels?.["name"], "obs-a", "per-database families carry the database's name");
  });

  it("needs the admin key or a metrics token; a metrics token reads /metrics and nothing else", async () => {
    assert.equal((await get("/metrics", {})).status, 401);
    assert.equal((await get("/metrics", { authorization: "Bearer ccpm_nope" })).status, 401);
    assert.equal((await get("/metrics", { authorization: `Bearer ${a.token}` })).status, 401, "a database token is not a metrics token");
    const issued = await fetch(`${server.url}/v1/metrics-tokens`, { method: "POST", headers: admin() });
    assert.equal(issued.status, 201);
    const { token } = (await issued.json()) as { token: string };
    assert.match(token, /^ccpm_[0-9a-f]{64}$/);
    await scrape({ authorization: `Bearer ${token}` });
    assert.equal((await get("/v1/databases", { authorization: `Bearer ${token}` })).status, 401);
    assert.equal((await fetch(`${server.url}/v1/metrics-tokens`, { method: "POST", headers: { authorization: `Bearer ${token}` } })).status, 401);
  });

  it("counts N HTTP queries as +N requests of their route and status", async () => {
    const labels = { method: "POST", route: "/v1/databases/:id/query", status: "200" };
    const before = value(await scrape(), "ccpd_http_requests_total", labels) ?? 0;
    const n = 7;
    for (let i = 0; i < n; i++) assert.equal((await sql(a, "query", { sql: "SELECT $1::int AS i", params: [i] })).status, 200);
    const text = (await get("/metrics")).text;
    assert.equal(value(parsePrometheusTextFormat(text), "ccpd_http_requests_total", labels), before + n);
    // The parser drops a labelled histogram's labels: read its _count line itself.
    const count = /^ccpd_http_request_duration_seconds_count\{method="POST",route="\/v1\/databases\/:id\/query",status="200"\} (\d+)$/m.exec(text)?.[1];
    assert.equal(Number(count), before + n, "the latency histogram counts the same requests");
  });

  it("counts a rolled-back transaction as +1 pg_stat_database_xact_rollback, and only in its own database", async () => {
    const read = async () => {
      const f = await scrape();
      return [value(f, "pg_stat_database_xact_rollback", { database_id: a.id, datname: "default" }), value(f, "pg_stat_database_xact_rollback", { database_id: b.id, datname: "default" })];
    };
    // Postgres publishes a backend's counters at most once a second: wait until nothing is pending.
    let [beforeA, beforeB] = await read();
    for (let stable = 0; stable < 2; ) {
      await sleep(1_100);
      const [nowA, nowB] = await read();
      stable = nowA === beforeA && nowB === beforeB ? stable + 1 : 0;
      [beforeA, beforeB] = [nowA, nowB];
    }
    const failed = await sql(a, "transaction", { statements: [{ sql: "SELECT 1" }, { sql: "SELECT 1/0" }] });
    assert.equal(failed.status, 400);
    await eventually("the rollback to be counted", async () => ((await read())[0] !== beforeA ? true : undefined));
    await sleep(1_100); // and nothing else arrives after it
    const [afterA, afterB] = await read();
    assert.equal(afterA, (beforeA ?? 0) + 1);
    assert.equal(afterB, beforeB);
  });

  it("does not wake a stopped database when scraped: pg_up 0, and it stays stopped", async () => {
    const c = await server.databases.create("obs-sleepy");
    await server.driver.stop(c.database.id);
    for (let i = 0; i < 3; i++) {
      const families = await scrape();
      assert.equal(value(families, "pg_up", { database_id: c.database.id }), 0);
      assert.equal(value(families, "pg_stat_database_xact_commit", { database_id: c.database.id }), undefined);
      assert.equal(await server.driver.state(c.database.id), "stopped");
    }
    const status = await get(`/v1/databases/${c.database.id}/status`);
    assert.equal(status.status, 200);
    assert.equal(await server.driver.state(c.database.id), "stopped", "status does not wake it either");
    assert.equal(existsSync(path.join(server.driver.dataDir(c.database.id), "postmaster.pid")), false);
    await server.databases.destroy(c.database.id);
  });

  it("counts a suspend and a wake, and records both in the database's log stream", async () => {
    const c = await server.databases.create("obs-naps");
    const before = await scrape();
    const wakes = value(before, "ccpd_instance_wakes_total", {}) ?? 0;
    const suspends = value(before, "ccpd_instance_suspends_total", {}) ?? 0;
    assert.equal(await server.instances.suspend(c.database.id), true);
    const lease = await server.instances.use(c.database.id); // wakes it
    lease.release();
    // The waker goes on as soon as the server accepts connections; the wake is recorded just after, off its path.
    const after = await eventually("the wake to be counted", async () => {
      const families = await scrape();
      return value(families, "ccpd_instance_wakes_total", {}) !== wakes ? families : undefined;
    });
    assert.equal(value(after, "ccpd_instance_suspends_total", {}), suspends + 1);
    assert.equal(value(after, "ccpd_instance_wakes_total", {}), wakes + 1);
    const target = { id: c.database.id, token: c.token };
    const lines = await eventually("both events in the log stream", async () => {
      const seen = (await logs(target, "since=5m")).filter((e) => e.source === "ccp").map((e) => e.message);
      return seen.some((m) => m === "database suspended (manual)") && seen.some((m) => /^database woken in \d+ ms$/.test(m)) ? seen : undefined;
    });
    assert.ok(lines.indexOf("database suspended (manual)") < lines.findIndex((m) => m.startsWith("database woken")), lines.join("\n"));
    await server.databases.destroy(c.database.id);
  });

  it("shows a statement error in the database's log, and never another database's lines", async () => {
    const markA = `missing_in_a_${Date.now()}`;
    const markB = `missing_in_b_${Date.now()}`;
    assert.equal((await sql(a, "query", { sql: `SELECT * FROM ${markA}` })).status, 400);
    assert.equal((await sql(b, "query", { sql: `SELECT * FROM ${markB}` })).status, 400);
    const entryA = await eventually("A's error in A's log", async () => (await logs(a, "since=5m&level=error")).find((e) => e.statement?.includes(markA)));
    assert.equal(entryA.level, "error");
    assert.equal(entryA.code, "42P01");
    assert.equal(entryA.source, "postgres");
    await eventually("B's error in B's log", async () => (await logs(b, "since=5m&level=error")).find((e) => e.statement?.includes(markB)));
    const all = JSON.stringify(await logs(a, "since=1h&level=debug"));
    assert.ok(!all.includes(markB), "A's log shows a line of B");
    assert.ok(!JSON.stringify(await logs(b, "since=1h&level=debug")).includes(markA), "B's log shows a line of A");
    // --level warning leaves routine lines out; platform events are in the same stream.
    assert.ok((await logs(a, "since=1h&level=warning")).every((e) => ["warning", "error", "fatal", "panic"].includes(e.level)));
    assert.ok((await logs(a, "since=1h")).some((e) => e.source === "ccp" && e.event === "created"));
  });

  it("follows the log: a statement error arrives on the open stream, and the stream stops when the client goes away", async () => {
    const controller = new AbortController();
    // Nothing matches yet: the stream must still open at once (its headers were held until the first entry).
    const since = new Date().toISOString();
    const opened = setTimeout(() => controller.abort(new Error("the stream did not open within 10 s")), 10_000);
    const res = await fetch(`${server.url}/v1/databases/${a.id}/logs?since=${since}&follow=true&level=panic`, { headers: admin(), signal: controller.signal });
    clearTimeout(opened);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /application\/x-ndjson/);
    controller.abort();
    // And a stream that shows errors gets the one this test causes.
    const errors = new AbortController();
    const res2 = await fetch(`${server.url}/v1/databases/${a.id}/logs?since=${since}&follow=true&level=error`, { headers: admin(), signal: errors.signal });
    assert.equal(res2.status, 200);
    const mark = `followed_${Date.now()}`;
    const reader = (res2.body as ReadableStream<Uint8Array>).getReader();
    assert.equal((await sql(a, "query", { sql: `SELECT * FROM ${mark}` })).status, 400);
    let text = "";
    const decoder = new TextDecoder();
    const deadline = Date.now() + 15_000;
    while (!text.includes(mark)) {
      assert.ok(Date.now() < deadline, "the error did not arrive within 15 s");
      const { value: chunk, done } = await reader.read();
      assert.equal(done, false, "the stream ended");
      text += decoder.decode(chunk, { stream: true });
    }
    const entry = text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as LogEntry).find((e) => e.statement?.includes(mark));
    assert.equal(entry?.code, "42P01");
    errors.abort();
    await reader.cancel().catch(() => undefined);
    // ccpd still answers (the stream's poller stopped with its client).
    assert.equal((await get("/v1/health", {})).status, 200);
  });

  it("rejects bad log and insight parameters with a 400 that says what to do", async () => {
    for (const q of ["since=yesterday", "level=loud", "limit=0"]) {
      const res = await get(`/v1/databases/${a.id}/logs?${q}`);
      assert.equal(res.status, 400, q);
      assert.equal((JSON.parse(res.text) as { error: { code: string } }).error.code, "invalid_request");
    }
    assert.equal((await get(`/v1/databases/${a.id}/insights?sort=fastest`)).status, 400);
    assert.equal((await get(`/v1/databases/${a.id}/insights?limit=5000`)).status, 400);
    assert.equal((await get("/v1/databases/no-such-db/logs")).status, 404);
  });

  it("answers every malformed reference, parameter and credential on its routes with a 4xx, never a 5xx", async () => {
    const refs = ["db-000000000000", "nope", "..", "%2e%2e", "a".repeat(90), "%00", "a%00b", "%E2%9C%93", "%ff", a.id.toUpperCase()];
    const routes = (ref: string): [string, string][] => [
      ["GET", `/v1/databases/${ref}/logs`],
      ["GET", `/v1/databases/${ref}/logs?since=%00&level=%00`],
      ["GET", `/v1/databases/${ref}/logs?follow=maybe`],
      ["GET", `/v1/databases/${ref}/insights?sort=calls&limit=-1`],
      ["GET", `/v1/databases/${ref}/insights?extra=1`],
      ["POST", `/v1/databases/${ref}/insights/reset`],
    ];
    const auths = [admin(), { authorization: `Bearer ${a.token}` }, {}, { authorization: "Bearer \u00ff" }, { authorization: "Basic Zm9vOmJhcg==" }];
    for (const ref of [...refs, a.id]) {
      for (const [method, url] of routes(ref)) {
        for (const headers of auths) {
          const valid = headers === auths[0] || headers === auths[1];
          // On the real database with valid credentials, only the malformed parameters are the test.
          if (ref === a.id && valid && (method === "POST" || url.endsWith("/logs"))) continue;
          const res = await fetch(`${server.url}${url}`, { method, headers: headers as Record<string, string> });
          const text = await res.text();
          assert.ok(res.status >= 400 && res.status < 500, `${method} ${url} with ${JSON.stringify(headers).slice(0, 40)}: ${res.status} ${text.slice(0, 200)}`);
          // Fastify's router answers a URL it cannot decode itself (FST_ERR_BAD_URL), before any route: the same for every route.
          if (!text.includes("FST_ERR_BAD_URL")) assert.match(text, /"error":\{"code":"[a-z_]+","message":"[^"]+/);
        }
      }
    }
    for (const headers of [{}, { authorization: "Bearer ccpm_" }, { authorization: `Bearer ${"x".repeat(5000)}` }] as Record<string, string>[]) {
      assert.equal((await fetch(`${server.url}/metrics`, { headers })).status, 401);
      assert.equal((await fetch(`${server.url}/v1/metrics-tokens`, { method: "POST", headers })).status, 401);
    }
  });

  it("lists statements in insights after they ran, sorted as asked; a tenant sees only its own database", async () => {
    const reset = await fetch(`${server.url}/v1/databases/${a.id}/insights/reset`, { method: "POST", headers: admin() });
    assert.equal(reset.status, 200);
    for (let i = 0; i < 5; i++) await sql(a, "query", { sql: "SELECT count(*) AS n FROM generate_series(1, $1::int)", params: [1000 + i] });
    await sql(a, "query", { sql: "SELECT pg_sleep(0.05) AS slow" });
    await sql(b, "query", { sql: "SELECT 'only in b' AS secret_b_statement" });

    const byCalls = await insights(a, "sort=calls&limit=50");
    assert.equal(byCalls.status, 200, byCalls.text);
    const series = byCalls.statements.find((s) => s.query.includes("generate_series"));
    assert.ok(series, `the statement is listed: ${JSON.stringify(byCalls.statements)}`);
    assert.equal(series.calls, 5);
    assert.equal(series.rows, 5);
    assert.equal(series.database, "default");
    assert.equal(series.user, "clusterbase");
    const calls = byCalls.statements.map((s) => s.calls);
    assert.deepEqual(calls, [...calls].sort((x, y) => y - x), "sorted by calls, highest first");
    assert.ok(byCalls.statements.every((s) => s.user !== "ccp_admin"), "ccp's own statements are not listed");

    const byMean = (await insights(a, "sort=mean&limit=50")).statements;
    assert.deepEqual(byMean.map((s) => s.mean_ms), byMean.map((s) => s.mean_ms).sort((x, y) => y - x));
    assert.ok(byMean[0]?.query.includes("pg_sleep"), "the slow statement leads by mean time");
    const byTotal = (await insights(a, "sort=total&limit=1")).statements;
    assert.equal(byTotal.length, 1, "limit applies");

    assert.ok(!JSON.stringify(byCalls.statements).includes("secret_b_statement"), "A's insights show B's statement");
    // A database token reads its own database's insights and logs, and not another's.
    const asA = { authorization: `Bearer ${a.token}` };
    assert.equal((await insights(a, "sort=calls", asA)).status, 200);
    assert.equal((await insights(b, "sort=calls", asA)).status, 401);
    assert.equal((await get(`/v1/databases/${b.id}/logs`, asA)).status, 401);
    // And over SQL the tenant cannot read pg_stat_statements at all (it is not in its databases, and it cannot add it).
    const tenant = await connectInstance(server, a.id);
    try {
      await assert.rejects(tenant.query("SELECT query FROM pg_stat_statements"), /does not exist/);
      await assert.rejects(tenant.query("CREATE EXTENSION pg_stat_statements"), /permission denied/);
    } finally {
      await tenant.end();
    }

    const after = await fetch(`${server.url}/v1/databases/${a.id}/insights/reset`, { method: "POST", headers: admin() });
    assert.equal(after.status, 200);
    assert.ok(!(await insights(a, "sort=calls&limit=50")).statements.some((s) => s.query.includes("generate_series")), "reset clears the statistics");
  });

  it("gives status its headline figures: TPS over the last minute, cache hit rate, size limit, archive lag", async () => {
    const read = async () => (JSON.parse((await get(`/v1/databases/${a.id}/status`)).text) as { status: Record<string, unknown> }).status;
    await read();
    await sleep(1_100); // two readings at least a second apart make a rate
    await sql(a, "query", { sql: "SELECT 1" });
    const s = await read();
    assert.equal(typeof s["tps"], "number");
    assert.ok((s["tps"] as number) >= 0);
    assert.ok((s["cache_hit_rate"] as number) > 0 && (s["cache_hit_rate"] as number) <= 1);
    // The database has no storage limit of its own: the server's default is its limit.
    assert.equal(s["size_limit_bytes"], server.config.defaultLimits.storageBytes ?? null);
    assert.equal(typeof s["wal_archive_lag_bytes"], "number");
  });

  it("never shows a password or token in any log after create, provision, reset-password and token rotate", async () => {
    const provisioned = await server.databases.create("obs_prov", { owner: "obs_owner", password: "provision-Secret-4711" });
    const reset = "reset-Secret-0815-xyz";
    await server.databases.resetPassword(a.id, reset);
    const rotated = await server.databases.rotateToken(a.id);
    // A failing statement logs its text; make sure the log files are live.
    await sql({ id: a.id, token: rotated.token }, "query", { sql: "SELECT * FROM after_rotate" });
    await eventually("the rotate to be logged", async () => ((await logs(a, "since=5m")).some((e) => e.event === "token_rotated") ? true : undefined));
    assert.ok((await logs(a, "since=5m")).some((e) => e.event === "password_changed"));

    const secrets = [a.password, a.token, b.password, b.token, provisioned.password, provisioned.token, "provision-Secret-4711", reset, rotated.token, adminKey];
    const files = [...filesUnder(path.join(root, "data", "instances")).filter((f) => /\/log\/|postgres\.log$/.test(f)), path.join(root, "data", "catalog", "postgres.log")];
    assert.ok(files.some((f) => f.endsWith(".json")), "instances write JSON logs");
    const texts = [
      ...files.map((f) => ({ where: f, text: readFileSync(f, "utf8") })),
      { where: "ccpd's own log", text: ccpdLog },
      ...(await Promise.all([a, b, { id: provisioned.database.id }].map(async (d) => ({ where: `API logs of ${d.id}`, text: JSON.stringify(await logs(d, "since=1h&level=debug")) })))),
    ];
    for (const { where, text } of texts) {
      for (const secret of secrets) assert.ok(!text.includes(secret), `a secret (${secret.slice(0, 6)}…) appears in ${where}`);
    }
  });

  it("ends open log streams when ccpd shuts down, instead of waiting for them", async () => {
    const res = await fetch(`${server.url}/v1/databases/${a.id}/logs?since=1s&follow=true`, { headers: admin() });
    assert.equal(res.status, 200);
    const body = res.text(); // resolves when ccpd ends the stream
    await server.close();
    assert.equal(typeof (await body), "string");
  });
});

describe("ccpd's HTTP families, counted by hand (pure)", () => {
  it("print exactly what prom-client's own Counter and Histogram print for the same requests", async () => {
    const metrics = new Metrics({ gatewayPools: () => [], wireSessions: () => new Map() });
    const reference = new Registry();
    const labelNames = ["method", "route", "status"] as const;
    const requests = new Counter({ name: "ccpd_http_requests_total", help: "HTTP requests answered by ccpd, by method, route (the route pattern, not the URL) and status code", labelNames, registers: [reference] });
    const duration = new Histogram({
      name: "ccpd_http_request_duration_seconds",
      help: "Time from a request's arrival to its answer, by method, route and status code",
      labelNames,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [reference],
    });
    const query = metrics.httpObserver("POST", "/v1/databases/:id/query");
    // Every bucket, its exact bounds, past the last one, a quoted route and an unmatched request.
    const seconds = [0, 0.0004, 0.0005, 0.0007, 0.001, 0.003, 0.02, 0.05, 0.7, 1, 4, 29.9, 60, 200, 300, 301, 5000];
    for (const [i, s] of seconds.entries()) {
      const status = i % 3 === 0 ? 400 : 200;
      query(status, s);
      requests.labels("POST", "/v1/databases/:id/query", String(status)).inc();
      duration.labels("POST", "/v1/databases/:id/query", String(status)).observe(s);
    }
    metrics.observeHttp("GET", "unmatched", 404, 0.0001);
    requests.labels("GET", "unmatched", "404").inc();
    duration.labels("GET", "unmatched", "404").observe(0.0001);
    metrics.httpObserver("GET", 'quoted "route" \\ here')(200, 0.002);
    requests.labels("GET", 'quoted "route" \\ here', "200").inc();
    duration.labels("GET", 'quoted "route" \\ here', "200").observe(0.002);

    const families = (text: string) => text.split("\n").filter((l) => /ccpd_http_request/.test(l));
    const ours = families(await metrics.registry.metrics());
    assert.ok(ours.length > 40, "both families are printed");
    assert.deepEqual(ours, families(await reference.metrics()));
    // The JSON form (what prom-client's cluster aggregation sends between processes), as sent.
    const json = async (r: Registry) => JSON.parse(JSON.stringify((await r.getMetricsAsJSON()).filter((m) => m.name.startsWith("ccpd_http_request")))) as unknown;
    assert.deepEqual(await json(metrics.registry), await json(reference));
  });
});
