import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { resolveServerConfig, startServer, type RunningServer } from "../src/index.js";
import { connectPg, tlsBySni } from "./wire-clients.js";

// Child processes must run asynchronously: the proxy under test lives in this process's event loop.
const execFileAsync = promisify(execFile);
function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: "utf8" }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} failed: ${stderr}`)) : resolve(stdout)));
    child.stdin?.end(input ?? "");
  });
}

/** psql and pgbench come from Debian's postgresql-client; install it when absent (CI runs as root). */
function ensurePostgresClient(): boolean {
  const has = () => spawnSync("sh", ["-c", "command -v psql && command -v pgbench"], { stdio: "ignore" }).status === 0;
  if (has()) return true;
  if (process.getuid?.() !== 0) return false;
  spawnSync("apt-get", ["update"], { stdio: "ignore" });
  spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "postgresql-client"], { stdio: "ignore", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  return has();
}

describe("Postgres wire endpoint", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "ccp-wire-"));
  const haveClient = ensurePostgresClient();
  let server: RunningServer;
  let a: { id: string; url: string; password: string };
  let b: { id: string; url: string; password: string };

  before(async () => {
    const config = resolveServerConfig({ dataDir: path.join(root, "data"), port: 0, wirePort: 0, wireMaxConnections: 4 }, { ...process.env, XDG_CONFIG_HOME: path.join(root, "config"), CCP_LOG_LEVEL: "silent" });
    server = await startServer({ ...config, wireStartupTimeoutMs: 1_500 });
    const ca = await server.databases.create("wire-a");
    const cb = await server.databases.create("wire-b");
    a = { id: ca.database.id, url: ca.database_url, password: ca.password };
    b = { id: cb.database.id, url: cb.database_url, password: cb.password };
  });
  after(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  const connect = connectPg;
  const authError = (config: string | pg.ClientConfig) =>
    connect(config).then(
      async (c) => {
        await c.end();
        return assert.fail("expected authentication to fail");
      },
      (e: pg.DatabaseError) => e,
    );

  it("prints a DATABASE_URL routed by user name that node-postgres accepts (no TLS)", async () => {
    assert.match(a.url, new RegExp(`^postgresql://clusterbase\\.${a.id}:[^@]+@127\\.0\\.0\\.1:${server.wirePort}/default$`));
    assert.equal(await server.databases.databaseUrl(a.id), a.url);
    const c = await connect(a.url);
    const { rows } = await c.query("SELECT current_user AS u, current_database() AS d, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su");
    assert.deepEqual(rows, [{ u: "clusterbase", d: "default", su: false }]);
    await c.end();
  });

  it("routes by TLS SNI with a plain user name, verifying ccpd's certificate", async () => {
    const c = await connect(tlsBySni(server, b.id, b.password));
    const { rows } = await c.query("SELECT current_database() AS d");
    assert.deepEqual(rows, [{ d: "default" }]);
    // It reached instance B: a table made there is visible, not on A.
    await c.query("CREATE TABLE only_on_b (x int)");
    await c.end();
    const onA = await connect(a.url);
    assert.deepEqual((await onA.query("SELECT to_regclass('only_on_b') AS t")).rows, [{ t: null }]);
    await onA.end();
  });

  it("gives wrong password, unknown database and another instance's password the same error", async () => {
    const user = (id: string) => `clusterbase.${id}`;
    const cases = [
      await authError({ host: "127.0.0.1", port: server.wirePort, user: user(a.id), password: "wrong-password", database: "default" }),
      await authError({ host: "127.0.0.1", port: server.wirePort, user: user("db-000000000000"), password: a.password, database: "default" }),
      await authError({ host: "127.0.0.1", port: server.wirePort, user: user(a.id), password: b.password, database: "default" }),
      await authError({ host: "127.0.0.1", port: server.wirePort, user: `nosuchrole.${a.id}`, password: a.password, database: "default" }),
    ];
    for (const e of cases) {
      assert.equal(e.code, "28P01");
      assert.match(e.message, /^password authentication failed for user "[^"]+"$/);
    }
    assert.equal(cases[0]?.message.replace(a.id, "X"), cases[1]?.message.replace("db-000000000000", "X"));
  });

  it("explains a connection with no routing key", async () => {
    const e = await authError({ host: "127.0.0.1", port: server.wirePort, user: "clusterbase", password: a.password, database: "default" });
    assert.equal(e.code, "28000");
    assert.match(e.message, /no database id/);
  });

  it("keeps session state: prepared statements, temp tables, transactions", async () => {
    const c = await connect(a.url);
    await c.query("CREATE TEMP TABLE t (n int)");
    for (let i = 0; i < 5; i++) await c.query({ name: "ins", text: "INSERT INTO t VALUES ($1)", values: [i] });
    await c.query("BEGIN");
    await c.query("INSERT INTO t VALUES (100)");
    await c.query("ROLLBACK");
    assert.deepEqual((await c.query({ name: "count", text: "SELECT count(*)::int AS c, sum(n)::int AS s FROM t" })).rows, [{ c: 5, s: 10 }]);
    await c.end();
  });

  it("delivers LISTEN/NOTIFY between two sessions", async () => {
    const listener = await connect(a.url);
    const notifier = await connect(a.url);
    await listener.query("LISTEN ccp_events");
    const got = new Promise<string | undefined>((resolve) => listener.once("notification", (n) => resolve(n.payload)));
    await notifier.query("NOTIFY ccp_events, 'hello'");
    assert.equal(await got, "hello");
    await listener.end();
    await notifier.end();
  });

  it("refuses connections past the per-instance limit with a clear error", async () => {
    const held = [];
    for (let i = 0; i < 4; i++) held.push(await connect(a.url));
    const e = await authError(a.url);
    assert.equal(e.code, "53300");
    assert.match(e.message, /too many connections.*limit is 4/);
    await Promise.all(held.map((c) => c.end()));
    // Slots are released when sessions end.
    const again = await connect(a.url);
    await again.end();
  });

  describe("malformed start-up", () => {
    const exchange = (payload: Buffer, waitMs = 5_000) =>
      new Promise<{ data: Buffer; closed: boolean }>((resolve) => {
        const s = net.connect(server.wirePort, "127.0.0.1");
        let data = Buffer.alloc(0);
        const timer = setTimeout(() => {
          s.destroy();
          resolve({ data, closed: false });
        }, waitMs);
        s.on("data", (d) => (data = Buffer.concat([data, d])));
        s.on("error", () => undefined);
        s.on("close", () => {
          clearTimeout(timer);
          resolve({ data, closed: true });
        });
        s.write(payload);
      });
    const packet = (len: number, code: number) => {
      const p = Buffer.alloc(8);
      p.writeInt32BE(len, 0);
      p.writeInt32BE(code, 4);
      return p;
    };

    it("answers an oversized start-up packet with an error and closes", async () => {
      const r = await exchange(packet(1_000_000, 196608));
      assert.equal(r.closed, true);
      assert.equal(String.fromCharCode(r.data[0] ?? 0), "E");
      assert.match(r.data.toString("latin1"), /08P01/);
    });
    it("refuses an unknown protocol version", async () => {
      const r = await exchange(packet(8, 0x00020000));
      assert.equal(r.closed, true);
      assert.match(r.data.toString("latin1"), /unsupported frontend protocol/);
    });
    it("refuses a start-up packet without a user", async () => {
      const body = Buffer.from("database\0default\0\0");
      const p = Buffer.concat([packet(8 + body.length, 196608), body]);
      const r = await exchange(p);
      assert.equal(r.closed, true);
      assert.match(r.data.toString("latin1"), /no user name/);
    });
    it("closes a client that stalls during start-up", async () => {
      const r = await exchange(Buffer.from([0, 0, 0]), 10_000);
      assert.equal(r.closed, true);
    });
    it("survives random garbage", async () => {
      let seed = 42;
      const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
      for (let i = 0; i < 50; i++) {
        const bytes = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
        const r = await exchange(bytes, 3_000);
        // Either refused (an ErrorResponse, or a close without reply), or still waiting for the rest of a packet whose length it was told.
        if (r.data.length > 0) assert.equal(String.fromCharCode(r.data[0] as number), "E", `seed 42, case ${i}: answered ${r.data.toString("hex")}`);
      }
      const c = await connect(a.url);
      assert.deepEqual((await c.query("SELECT 1 AS x")).rows, [{ x: 1 }]);
      await c.end();
    });
  });

  describe("with psql and pgbench", { skip: haveClient ? false : "postgresql-client not installable here" }, () => {
    it("psql runs queries and COPY in and out", async () => {
      const psql = (args: string[], input?: string) => run("psql", [a.url, "-X", "-q", "-v", "ON_ERROR_STOP=1", ...args], input);
      await psql(["-c", "CREATE TABLE copy_t (id int, name text)"]);
      await psql(["-c", "\\copy copy_t FROM STDIN WITH (FORMAT csv)"], "1,alice\n2,bob\n3,\"c, d\"\n");
      assert.equal((await psql(["-At", "-c", "SELECT count(*) FROM copy_t"])).trim(), "3");
      assert.equal(await psql(["-c", "\\copy (SELECT * FROM copy_t ORDER BY id) TO STDOUT WITH (FORMAT csv)"]), '1,alice\n2,bob\n3,"c, d"\n');
    });

    it("pgbench -i then a short pgbench run", async () => {
      await execFileAsync("pgbench", ["-i", "-s", "1", "-q", a.url]);
      const out = await run("pgbench", ["-c", "2", "-j", "2", "-t", "50", "--no-vacuum", a.url]);
      assert.match(out, /number of transactions actually processed: 100\/100/);
      assert.match(out, /number of failed transactions: 0/);
    });

    it("a cancel reaches exactly the query it names, not one on another instance", async () => {
      const onB = await connect(b.url);
      const other = onB.query("SELECT pg_sleep(2.5) AS slept");
      const psql = spawn("psql", [a.url, "-X", "-c", "SELECT pg_sleep(30)"], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      psql.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      // Wait until the sleep is running on A, then Ctrl+C psql: it sends a CancelRequest through the proxy.
      const watch = await connect(a.url);
      for (let i = 0; i < 100; i++) {
        const { rows } = await watch.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'");
        if (rows[0].n > 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      psql.kill("SIGINT");
      const code = await new Promise<number | null>((resolve) => psql.on("exit", resolve));
      assert.equal(code, 1); // psql -c: the statement failed (cancelled)
      assert.match(stderr, /canceling statement due to user request/);
      assert.deepEqual((await other).rows, [{ slept: "" }]);
      await watch.end();
      await onB.end();
    });

    it("a cancel request with a wrong key cancels nothing", async () => {
      const c = await connect(a.url);
      const q = c.query("SELECT pg_sleep(1) AS s");
      const key = packetCancel(12345, 67890);
      await new Promise<void>((resolve) => {
        const s = net.connect(server.wirePort, "127.0.0.1", () => s.end(key));
        s.on("close", () => resolve());
        s.on("error", () => resolve());
      });
      assert.deepEqual((await q).rows, [{ s: "" }]);
      await c.end();
    });
  });
});

function packetCancel(pid: number, secret: number): Buffer {
  const p = Buffer.alloc(16);
  p.writeInt32BE(16, 0);
  p.writeInt32BE(80877102, 4);
  p.writeInt32BE(pid, 8);
  p.writeInt32BE(secret, 12);
  return p;
}
