import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client, neonConfig, Pool } from "@neondatabase/serverless";
import { eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/neon-serverless";
import { integer, pgTable, text } from "drizzle-orm/pg-core";
import { WebSocket } from "ws";
import type { RunningServer } from "../src/index.js";
import { startTestServer, type TestServer } from "./support/test-server.js";
import { connectPg } from "./wire-clients.js";

/**
 * The unmodified @neondatabase/serverless driver's WebSocket transport (Pool and
 * Client) against a real ccpd: the Postgres protocol in WebSocket frames on the
 * HTTP port, authenticated and routed like the wire endpoint. Regression (issue
 * 18): Pool.query and Client.connect got "Unexpected server response: 404".
 */
describe("Neon serverless driver over WebSocket (Pool, Client, drizzle neon-serverless)", () => {
  let t: TestServer;
  let server: RunningServer;
  let a: { id: string; url: string; password: string };
  let b: { id: string; url: string; password: string };
  let httpHost: string;

  before(async () => {
    t = await startTestServer("neon-ws", { wireMaxConnections: 4 }, (c) => ({ ...c, wireStartupTimeoutMs: 1_500 }));
    server = t.server;
    const ca = await server.databases.create("ws-a");
    const cb = await server.databases.create("ws-b");
    a = { id: ca.database.id, url: ca.database_url, password: ca.password };
    b = { id: cb.database.id, url: cb.database_url, password: cb.password };
    httpHost = new URL(server.url).host;
    // Node 20 has no global WebSocket; on Node 22+ the driver finds one itself.
    neonConfig.webSocketConstructor = WebSocket;
    // ccpd's HTTP port, plain ws:// on localhost (wss:// behind TLS otherwise); the driver appends ?address=<host>:<port>.
    neonConfig.wsProxy = `${httpHost}/v2`;
    neonConfig.useSecureWebSocket = false;
  });
  after(async () => {
    await t?.dispose();
  });

  it("Pool.query runs on the database the DATABASE_URL names (pipelined cleartext password, the driver's default)", async () => {
    assert.equal(neonConfig.pipelineConnect, "password");
    const pool = new Pool({ connectionString: a.url });
    const { rows } = await pool.query("SELECT current_user AS u, current_database() AS d, $1::int + 1 AS n", [41]);
    assert.deepEqual(rows, [{ u: "clusterbase", d: "default", n: 42 }]);
    await pool.query("CREATE TABLE only_on_a (x int)");
    await pool.end();
    const onB = await connectPg(b.url);
    assert.deepEqual((await onB.query("SELECT to_regclass('only_on_a') AS t")).rows, [{ t: null }]);
    await onB.end();
  });

  it("Client keeps a session: prepared statements, temp tables, interactive transactions, one backend", async () => {
    const c = new Client(a.url);
    await c.connect();
    const pid = (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
    assert.equal((c as unknown as { processID: number }).processID, pid);
    await c.query("CREATE TEMP TABLE t (n int)");
    for (let i = 0; i < 5; i++) await c.query({ name: "ins", text: "INSERT INTO t VALUES ($1)", values: [i] });
    await c.query("BEGIN");
    await c.query("INSERT INTO t VALUES (100)");
    const inside = (await c.query("SELECT count(*)::int AS c FROM t")).rows[0].c as number;
    await c.query("ROLLBACK");
    assert.equal(inside, 6);
    assert.deepEqual((await c.query({ name: "count", text: "SELECT count(*)::int AS c, sum(n)::int AS s FROM t" })).rows, [{ c: 5, s: 10 }]);
    assert.deepEqual((await c.query("SELECT pg_backend_pid() AS pid")).rows, [{ pid }]);
    await c.end();
  });

  it("Client receives LISTEN/NOTIFY", async () => {
    const listener = new Client(a.url);
    await listener.connect();
    await listener.query("LISTEN ccp_ws");
    const got = new Promise<string | undefined>((resolve) => listener.once("notification", (n: { payload?: string }) => resolve(n.payload)));
    const notifier = await connectPg(a.url);
    await notifier.query("NOTIFY ccp_ws, 'over websocket'");
    assert.equal(await got, "over websocket");
    await notifier.end();
    await listener.end();
  });

  it("works without pipelining too (pipelineConnect: false answers the password request)", async () => {
    const c = new Client(a.url);
    c.neonConfig.pipelineConnect = false;
    await c.connect();
    assert.deepEqual((await c.query("SELECT 'not pipelined' AS s")).rows, [{ s: "not pipelined" }]);
    await c.end();
  });

  it("routes by the database host (db-<id>.<domain>) with the plain role name", async () => {
    const c = new Client(`postgresql://clusterbase:${encodeURIComponent(b.password)}@${b.id}.${server.config.domain}:5432/default`);
    await c.connect();
    await c.query("CREATE TABLE only_on_b (x int)");
    await c.end();
    const onB = await connectPg(b.url);
    assert.deepEqual((await onB.query("SELECT to_regclass('only_on_b') IS NOT NULL AS t")).rows, [{ t: true }]);
    await onB.end();
  });

  it("refuses a wrong password with Postgres's error, pipelined or not", async () => {
    const bad = new URL(a.url);
    bad.password = "wrong-password";
    // Pipelined, connect() resolves before the server answers (the driver's design): the error comes as an 'error' event.
    const pipelined = new Client(bad.toString());
    const failed = new Promise<{ code?: string; message: string }>((resolve) => pipelined.on("error", resolve));
    await pipelined.connect().catch(() => undefined);
    const e = await failed;
    assert.equal(e.code, "28P01");
    assert.match(e.message, /password authentication failed/);

    const waiting = new Client(bad.toString());
    waiting.neonConfig.pipelineConnect = false;
    await assert.rejects(waiting.connect(), (err: { code?: string }) => err.code === "28P01");
  });

  it("declines Postgres-level TLS inside the WebSocket; the driver stops instead of going on unencrypted", async () => {
    const c = new Client(`${a.url}?sslmode=require`);
    c.neonConfig.forceDisablePgSSL = false;
    await assert.rejects(c.connect(), /does not support SSL/);
  });

  it("shares the wire endpoint's per-database connection limit", async () => {
    // Earlier tests' sessions are released when ccpd sees their WebSocket close: wait for that (bounded).
    for (let i = 0; i < 200 && (server.wire.sessionCounts().get(a.id) ?? 0) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.wire.sessionCounts().get(a.id) ?? 0, 0);
    const held: Client[] = [];
    for (let i = 0; i < 4; i++) {
      const c = new Client(a.url);
      await c.connect();
      await c.query("SELECT 1");
      held.push(c);
    }
    const over = new Client(a.url);
    over.neonConfig.pipelineConnect = false;
    await assert.rejects(over.connect(), (e: { code?: string; message: string }) => e.code === "53300" && /limit is 4/.test(e.message));
    await Promise.all(held.map((c) => c.end()));
  });

  it("closes a WebSocket that never sends a start-up packet (the wire endpoint's start-up timeout)", async () => {
    const ws = new WebSocket(`ws://${httpHost}/v2`);
    const code = await new Promise<number>((resolve) => ws.on("close", (c) => resolve(c)));
    assert.equal(typeof code, "number");
  });

  it("answers another WebSocket path with 404", async () => {
    const ws = new WebSocket(`ws://${httpHost}/v1/nope`);
    const status = await new Promise<number | undefined>((resolve) => {
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode));
      ws.on("error", () => resolve(undefined));
    });
    assert.equal(status, 404);
  });

  it("drizzle's neon-serverless driver: queries and an interactive transaction", async () => {
    const users = pgTable("ws_users", { id: integer("id").primaryKey(), name: text("name").notNull() });
    const pool = new Pool({ connectionString: a.url });
    const db = drizzle(pool);
    await db.execute(sql`CREATE TABLE ws_users (id int PRIMARY KEY, name text NOT NULL)`);
    await db.insert(users).values([
      { id: 1, name: "ada" },
      { id: 2, name: "grace" },
    ]);
    await db.transaction(async (tx) => {
      await tx.update(users).set({ name: "Ada" }).where(eq(users.id, 1));
      await tx.insert(users).values({ id: 3, name: "linus" });
    });
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.insert(users).values({ id: 4, name: "rolled back" });
        await tx.insert(users).values({ id: 1, name: "duplicate key" });
      }),
    );
    assert.deepEqual(await db.select().from(users).orderBy(users.id), [
      { id: 1, name: "Ada" },
      { id: 2, name: "grace" },
      { id: 3, name: "linus" },
    ]);
    await pool.end();
  });
});
