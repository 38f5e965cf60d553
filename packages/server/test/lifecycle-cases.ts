import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import type { RunningServer } from "../src/index.js";
import { BackupScheduler } from "../src/backups/scheduler.js";
import { restoreToPointInTime } from "../src/backups/pitr.js";
import { withAdmin } from "../src/databases/admin-connection.js";
import { postgresSettingsFor } from "../src/runtime/limits.js";
import { catalogSql } from "./support/catalog-sql.js";
import type { TestDriver } from "./support/drivers.js";
import { poll } from "./support/poll.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

/**
 * Databases that sleep and wake, whatever runs them: lifecycle.test.ts runs
 * these suites once per runtime driver (support/drivers.ts), as the forwarder
 * suites run once per engine.
 */
export function lifecycleSuite(driver: TestDriver): void {

  describe(`databases that sleep and wake (${driver.name} driver)`, () => {
    let t: TestServer;
    let server: RunningServer;
    /** Never suspends by itself: every suspend of it in these tests is a manual one. */
    let db: { id: string; token: string; url: string; password: string };

    before(async () => {
      t = await startTestServer("lifecycle", { suspendAfter: "1s", warmPool: 1, ...driver.options });
      server = t.server;
      countWakes(server);
      const c = await server.databases.create("sleepy", {}, undefined, { suspendAfter: "never" });
      db = { id: c.database.id, token: c.token, url: c.database_url, password: c.password };
      await query(db, "CREATE TABLE t (n int)");
    });
    after(async () => {
      await t?.dispose();
    });

    const status = async (id: string) => (await server.databases.get(id)).status;
    // Starts of suspended instances, as the lifecycle layer reports them (metrics and platform events count the same).
    const woken = new Map<string, number>();
    const countWakes = (s: RunningServer) => s.instances.events.on("wake", (e) => woken.set(e.id, (woken.get(e.id) ?? 0) + 1));
    // A wake's bookkeeping follows it off the caller's path: settled() waits for it.
    const wakes = async (id: string) => {
      await server.instances.settled(id);
      return woken.get(id) ?? 0;
    };
    const running = (id: string) => driver.serversOf(t, id);

    async function http(d: { id: string; token: string }, endpoint: string, body: unknown) {
      const res = await fetch(`${server.url}/v1/databases/${d.id}/${endpoint}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${d.token}` },
        body: JSON.stringify(body),
      });
      return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
    }
    async function query(d: { id: string; token: string }, sql: string) {
      const res = await http(d, "query", { sql });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body as { rows: Record<string, unknown>[] };
    }
    async function suspend(id: string) {
      // A client's end() returns before ccpd has seen its wire session close (the lease goes with it): a manual
      // suspend meanwhile is refused as "in use", rightly. Wait for what the test's clients closed.
      await poll("closed wire sessions to end", () => (server.wire.sessionCounts().get(id) ?? 0) === 0);
      await server.databases.suspend(id);
      assert.equal(await status(id), "suspended");
      assert.equal(await server.instances.state(id), "suspended");
      assert.deepEqual(running(id), [], "no postgres runs for a suspended database");
    }

    it("an idle database suspends by itself, shows it with its last activity, and a query wakes it", async () => {
      const c = await server.databases.create("idle-one");
      const d = { id: c.database.id, token: c.token };
      assert.equal((await server.databases.get(d.id)).suspend_after, "1s");
      await query(d, "SELECT 1");
      await poll("autosuspend", async () => (await status(d.id)) === "suspended");
      const view = (await server.databases.list()).find((v) => v.id === d.id);
      assert.equal(view?.status, "suspended");
      assert.ok(view?.last_active_at, "last activity is shown");
      assert.deepEqual(running(d.id), []);
      const before = await wakes(d.id);
      assert.deepEqual((await query(d, "SELECT 41 + 1 AS x")).rows, [{ x: 42 }]);
      assert.equal(await wakes(d.id), before + 1);
      await server.databases.destroy(d.id);
    });

    it("`never` is honoured while a database with a timeout beside it suspends", async () => {
      const c = await server.databases.create("short-one", {}, undefined, { suspendAfter: "1s" });
      await poll("the 1s database to suspend", async () => (await status(c.database.id)) === "suspended");
      assert.equal(await status(db.id), "ready");
      assert.equal(await server.instances.state(db.id), "running");
      // Changing it later works both ways.
      assert.equal((await server.databases.setSuspendAfter(c.database.id, "never")).suspend_after, "never");
      await server.databases.destroy(c.database.id);
    });

    for (const [path_, body] of [
      ["query", { sql: "SELECT count(*)::int AS n FROM t" }],
      ["execute", { sql: "INSERT INTO t VALUES (1)" }],
      ["transaction", { statements: [{ sql: "SELECT 1" }, { sql: "SELECT 2" }] }],
    ] as const) {
      it(`HTTP /${path_} wakes a suspended database`, async () => {
        await suspend(db.id);
        const before = await wakes(db.id);
        const res = await http(db, path_, body);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(await wakes(db.id), before + 1);
        assert.equal(await status(db.id), "ready");
      });
    }

    it("Neon's /sql wakes a suspended database", async () => {
      await suspend(db.id);
      const before = await wakes(db.id);
      const res = await fetch(`${server.url}/sql`, {
        method: "POST",
        headers: { "Neon-Connection-String": `postgresql://clusterbase:${db.token}@${db.id}.localhost/default` },
        body: JSON.stringify({ query: "SELECT 1 AS one", params: [] }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(await wakes(db.id), before + 1);
    });

    it("a wire connection wakes a suspended database, held after authentication", async () => {
      await suspend(db.id);
      const before = await wakes(db.id);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        assert.deepEqual((await c.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
      } finally {
        await c.end();
      }
      assert.equal(await wakes(db.id), before + 1);
    });

    it("a wrong password does not wake a suspended database", async () => {
      await suspend(db.id);
      const before = await wakes(db.id);
      const c = new pg.Client({ connectionString: db.url.replace(`:${db.password}@`, ":wrong-password@") });
      await assert.rejects(c.connect(), /password authentication failed/);
      assert.equal(await wakes(db.id), before);
      assert.equal(await status(db.id), "suspended");
    });

    it("status and a manual backup wake it (admin work); list and info do not", async () => {
      await suspend(db.id);
      await server.databases.list();
      await server.databases.get(db.id);
      assert.equal(await status(db.id), "suspended");
      const before = await wakes(db.id);
      const s = await server.databases.status(db.id);
      assert.equal(s.state, "ready");
      assert.equal(typeof s.size_bytes, "number");
      assert.equal(await wakes(db.id), before + 1);
      await suspend(db.id);
      const backup = await server.backups.create(db.id);
      assert.equal(backup.status, "ready");
      assert.equal(await wakes(db.id), before + 2);
    });

    it("50 concurrent HTTP requests to a suspended database all succeed, with exactly one start", async () => {
      await suspend(db.id);
      const before = await wakes(db.id);
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => http(db, "query", { sql: `SELECT ${i} AS i` })));
      assert.deepEqual(
        results.map((r) => r.status),
        results.map(() => 200),
      );
      assert.deepEqual(
        results.map((r) => (r.body as { rows: { i: number }[] }).rows[0]?.i),
        results.map((_, i) => i),
      );
      assert.equal(await wakes(db.id), before + 1);
    });

    it("20 concurrent wire connections to a suspended database all succeed, with exactly one start", async () => {
      await suspend(db.id);
      const before = await wakes(db.id);
      const clients = Array.from({ length: 20 }, () => new pg.Client({ connectionString: db.url }));
      try {
        await Promise.all(clients.map((c) => c.connect()));
        const rows = await Promise.all(clients.map(async (c, i) => (await c.query("SELECT $1::int AS i", [i])).rows[0]));
        assert.deepEqual(
          rows,
          clients.map((_, i) => ({ i })),
        );
      } finally {
        await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      }
      assert.equal(await wakes(db.id), before + 1);
    });

    it("a suspend is refused while a wire session is open (the session is activity)", async () => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        await assert.rejects(server.databases.suspend(db.id), (e: Error & { status?: number }) => e.status === 409);
        assert.equal((await c.query("SELECT 1 AS one")).rows[0].one, 1);
      } finally {
        await c.end();
      }
    });

    it("a request arriving while the database is being suspended is served (no lost race)", async () => {
      await query(db, "SELECT 1");
      const before = await wakes(db.id);
      const suspending = server.instances.suspend(db.id, "manual");
      const served = query(db, "SELECT 7 AS seven");
      const wire = (async () => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        try {
          return (await c.query("SELECT 8 AS eight")).rows[0];
        } finally {
          await c.end();
        }
      })();
      assert.equal(await suspending, true);
      assert.deepEqual((await served).rows, [{ seven: 7 }]);
      assert.deepEqual(await wire, { eight: 8 });
      assert.equal(await wakes(db.id), before + 1, "both late callers shared one wake");
    });

    it("point-in-time restore reaches an instant between a write and the suspension", async () => {
      const c = await server.databases.create("pitr-src", {}, undefined, { suspendAfter: "never" });
      const src = { id: c.database.id, token: c.token };
      await query(src, "CREATE TABLE marks (m text)");
      await server.backups.create(src.id);
      await query(src, "INSERT INTO marks VALUES ('before')");
      await sleep(20);
      const instant = new Date().toISOString();
      await sleep(20);
      await query(src, "INSERT INTO marks VALUES ('after')");
      await suspend(src.id);
      const before = await wakes(src.id);
      const copy = await restoreToPointInTime(
        { databases: server.databases, backups: server.backups, instances: server.instances, retentionDays: 7 },
        src.id,
        instant,
        "pitr-copy",
      );
      assert.deepEqual((await query({ id: copy.database.id, token: copy.token }, "SELECT m FROM marks ORDER BY m")).rows, [{ m: "before" }]);
      assert.equal(await wakes(src.id), before, "the suspended source was not woken");
      assert.equal(await status(src.id), "suspended");
      // The write that wakes it is archived by the next suspension too.
      assert.equal((await http(src, "execute", { sql: "INSERT INTO marks VALUES ('woke')" })).status, 200);
      await sleep(20);
      const instant2 = new Date().toISOString();
      await suspend(src.id);
      const copy2 = await restoreToPointInTime(
        { databases: server.databases, backups: server.backups, instances: server.instances, retentionDays: 7 },
        src.id,
        instant2,
        "pitr-copy-2",
      );
      assert.deepEqual((await query({ id: copy2.database.id, token: copy2.token }, "SELECT m FROM marks ORDER BY m")).rows, [{ m: "after" }, { m: "before" }, { m: "woke" }]);
    });

    it("the daily backup skips a suspended database with no writes since its last backup, and wakes one with writes", async () => {
      const c = await server.databases.create("nightly", {}, undefined, { suspendAfter: "never" });
      const d = { id: c.database.id, token: c.token };
      await query(d, "CREATE TABLE x (n int)");
      await suspend(d.id);
      const scheduler = (at: string) =>
        new BackupScheduler({ catalog: server.catalog, backups: server.backups, settings: { dailyAt: "00:00", retentionDays: 7 }, now: () => new Date(at), log: console });
      const kinds = async () =>
        (await catalogSql(server.catalog, (q) => q.query<{ n: string }>("SELECT count(*) AS n FROM ccp.backups WHERE database_id = $1 AND status = 'ready'", [d.id]))).rows[0]?.n;
      const dayAfter = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
      // Written since it was created and never backed up: woken, backed up.
      const first = await scheduler(`${dayAfter}T00:01:00Z`).tick();
      assert.ok(first.taken.length >= 1);
      assert.equal(await kinds(), "1");
      await suspend(d.id);
      const before = await wakes(d.id);
      // Nothing written since that backup: skipped, not woken.
      const dayAfter2 = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10);
      await scheduler(`${dayAfter2}T00:01:00Z`).tick();
      assert.equal(await kinds(), "1");
      assert.equal(await wakes(d.id), before);
      assert.equal(await status(d.id), "suspended");
      // Retention and WAL pruning work on it asleep.
      await server.backups.prune(7);
      assert.equal(await status(d.id), "suspended");
    });

    const warmPool = () => driver.warmPool?.(server) ?? 0;
    it("a pooled server claimed by create carries nothing of any other database", { skip: driver.warmPool ? false : `the ${driver.name} driver keeps no warm pool` }, async () => {
      await poll("the warm pool to refill", () => warmPool() >= 1);
      const a = await server.databases.create("pool-a", {}, undefined, { suspendAfter: "never" });
      const aRef = { id: a.database.id, token: a.token };
      await query(aRef, "CREATE TABLE secret (s text); INSERT INTO secret VALUES ('a-only')");
      await withAdmin(server.instances.endpoint(a.database.id), "postgres", async (c) => {
        await c.query("CREATE ROLE leak_role");
        await c.query("ALTER SYSTEM SET work_mem = '7MB'");
        await c.query("SELECT pg_reload_conf()");
      });
      await poll("the warm pool to refill", () => warmPool() >= 1);
      const b = await server.databases.create("pool-b", {}, undefined, { suspendAfter: "never" });
      assert.equal(warmPool(), 0, "b was a pooled server");
      const bRef = { id: b.database.id, token: b.token };
      assert.deepEqual((await query(bRef, "SELECT to_regclass('public.secret') AS t")).rows, [{ t: null }]);
      await withAdmin(server.instances.endpoint(b.database.id), "postgres", async (c) => {
        assert.equal((await c.query("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'leak_role'")).rows[0].n, 0);
        // Postgres's own default, or what the server's default limits set (runtime/limits.ts): not a's 7MB.
        assert.equal((await c.query("SHOW work_mem")).rows[0].work_mem, postgresSettingsFor(server.config.defaultLimits)["work_mem"] ?? "4MB");
        // Its own archive target, applied by a reload after the claim (a new session sees it once the reload is done).
        const dir = server.store.walDir(b.database.id);
        const seen = driver.archiveDirSeen(server, b.database.id);
        await poll("b's archive target", async () =>
          withAdmin(server.instances.endpoint(b.database.id), "postgres", async (d) => (await d.query("SHOW basic_archive.archive_directory")).rows[0]["basic_archive.archive_directory"] === seen),
        );
        // Its WAL goes to its own archive.
        const wal = (await c.query("SELECT pg_walfile_name(pg_switch_wal()) AS w")).rows[0].w as string;
        await poll("b's archive", () => existsSync(path.join(dir, wal)));
      });
      assert.deepEqual((await server.catalog.databases.find(b.database.id))?.owner_role, "clusterbase");
      await server.databases.destroy(a.database.id);
      await server.databases.destroy(b.database.id);
    });

    it("a ccpd restart does not wake a suspended database, and it still wakes on demand after", async () => {
      await suspend(db.id);
      server = await t.restart();
      assert.equal(await status(db.id), "suspended");
      assert.deepEqual(running(db.id), []);
      assert.deepEqual((await query(db, "SELECT 5 AS five")).rows, [{ five: 5 }]);
    });
  });

  describe(`a wake that outlasts the wake deadline (${driver.name} driver)`, () => {
    let t: TestServer;
    let server: RunningServer;
    let db: { id: string; token: string; url: string };

    before(async () => {
      // No start takes 1 ms: every wake outlasts this deadline.
      t = await startTestServer("lifecycle-deadline", { suspendAfter: "never", wakeTimeoutMs: 1, warmPool: 0, ...driver.options });
      server = t.server;
      const c = await server.databases.create("slow-waker");
      db = { id: c.database.id, token: c.token, url: c.database_url };
    });
    after(async () => {
      await t?.dispose();
    });

    const query = () =>
      fetch(`${server.url}/v1/databases/${db.id}/query`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${db.token}` },
        body: JSON.stringify({ sql: "SELECT 1 AS one" }),
      });

    it("HTTP answers 503 with Retry-After, saying it is waking; the wake carries on and a retry gets the answer", async () => {
      await server.databases.suspend(db.id);
      const res = await query();
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("retry-after"), "1");
      const body = (await res.json()) as { error: { code: string; message: string; reason: string } };
      assert.equal(body.error.code, "not_ready");
      assert.equal(body.error.reason, "waking");
      assert.match(body.error.message, /waking up/);
      await poll("the wake to finish", async () => (await server.databases.get(db.id)).status === "ready");
      assert.equal((await query()).status, 200);
    });

    it("the wire endpoint answers 57P03 saying the database is waking", async () => {
      await server.databases.suspend(db.id);
      const c = new pg.Client({ connectionString: db.url });
      await assert.rejects(c.connect(), (err: Error & { code?: string }) => err.code === "57P03" && /waking/.test(err.message));
      await poll("the wake to finish", async () => (await server.databases.get(db.id)).status === "ready");
      const again = new pg.Client({ connectionString: db.url });
      await again.connect();
      assert.equal((await again.query("SELECT 1 AS one")).rows[0].one, 1);
      await again.end();
    });
  });
}
