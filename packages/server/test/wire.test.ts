import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { serialize } from "pg-protocol";
import type { RunningServer } from "../src/index.js";
import { resolvePgBinaries } from "../src/runtime/process/binaries.js";
import { MessageReader } from "../src/wire/messages.js";
import { startTestServer, type TestServer } from "./support/test-server.js";
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
  const haveClient = ensurePostgresClient();
  let t: TestServer;
  let server: RunningServer;
  let a: { id: string; url: string; password: string };
  let b: { id: string; url: string; password: string };

  before(async () => {
    t = await startTestServer("wire", { wireMaxConnections: 4 }, (c) => ({ ...c, wireStartupTimeoutMs: 1_500 }));
    server = t.server;
    const ca = await server.databases.create("wire-a");
    const cb = await server.databases.create("wire-b");
    a = { id: ca.database.id, url: ca.database_url, password: ca.password };
    b = { id: cb.database.id, url: cb.database_url, password: cb.password };
  });
  after(async () => {
    await t?.dispose();
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

    it("closes on an oversized start-up packet without a reply, as Postgres does", async () => {
      const r = await exchange(packet(1_000_000, 196608));
      assert.equal(r.closed, true);
      assert.equal(r.data.length, 0);
    });
    // Regression (issue 18, item 3): a Terminate before the start-up packet got a FATAL
    // "invalid start-up packet length", which node-postgres raised as an unhandled 'error' event.
    it("closes on a Terminate sent before the start-up packet without a reply", async () => {
      const r = await exchange(Buffer.from([0x58, 0, 0, 0, 4]));
      assert.equal(r.closed, true);
      assert.equal(r.data.length, 0);
    });
    it("node-postgres connect() then end() at once raises no error", async () => {
      const errors: Error[] = [];
      const c = new pg.Client({ connectionString: a.url });
      c.on("error", (e) => errors.push(e));
      // node-postgres never settles connect() once end() was called (against Postgres too): only end() is awaited.
      void c.connect().catch((e: Error) => errors.push(e));
      await c.end();
      assert.deepEqual(errors, []);
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

  describe("what a client can tell apart from plain Postgres (issue 18)", () => {
    const ca = () => readFileSync(server.tlsCertFile, "utf8");

    // Regression (item 5): clients got a random BackendKeyData pid, so pg_terminate_backend(<the driver's pid>) found nobody.
    it("gives the client the backend's real pid, which pg_terminate_backend reaches", async () => {
      const c = await connect(a.url);
      const pid = (c as unknown as { processID: number }).processID;
      assert.deepEqual((await c.query("SELECT pg_backend_pid() AS pid")).rows, [{ pid }]);
      const ended = new Promise<void>((resolve) => c.on("error", () => resolve()));
      const admin = await connect(a.url);
      assert.deepEqual((await admin.query("SELECT pg_terminate_backend($1) AS t", [pid])).rows, [{ t: true }]);
      await ended;
      await admin.end();
    });

    it("a cancel request with the real pid but a wrong key cancels nothing", async () => {
      const c = await connect(a.url);
      const pid = (c as unknown as { processID: number }).processID;
      const q = c.query("SELECT pg_sleep(1) AS s");
      await new Promise<void>((resolve) => {
        const s = net.connect(server.wirePort, "127.0.0.1", () => s.end(packetCancel(pid, 67890)));
        s.on("close", () => resolve());
        s.on("error", () => resolve());
      });
      assert.deepEqual((await q).rows, [{ s: "" }]);
      await c.end();
    });

    // Regression (item 2): the ClientHello was put back with unshift, which a TLSSocket never reads: direct TLS hung.
    it("direct TLS (sslnegotiation=direct) with node-postgres", async () => {
      const c = await connect({ ...tlsBySni(server, b.id, b.password), sslnegotiation: "direct" } as pg.ClientConfig);
      assert.deepEqual((await c.query("SELECT current_database() AS d, inet_server_port() IS NULL AS unix")).rows, [{ d: "default", unix: true }]);
      await c.end();
    });

    it("direct TLS negotiates ALPN postgresql, and without ALPN is refused as Postgres 17+ does", async () => {
      const withAlpn = await directTls(["postgresql"]);
      assert.equal(withAlpn.alpn, "postgresql");
      const startup = serialize.startup({ user: `clusterbase.${a.id}`, database: "default" });
      const first = await withAlpn.exchange(startup);
      assert.equal(first.type, "R");
      assert.equal(first.body.readInt32BE(0), 10); // AuthenticationSASL
      withAlpn.socket.destroy();

      const without = await directTls(undefined);
      const refused = await without.exchange(Buffer.alloc(0));
      assert.equal(refused.type, "E");
      assert.match(refused.body.toString("utf8"), /without ALPN/);
      without.socket.destroy();
    });

    const directTls = async (alpn: string[] | undefined) => {
      const socket = tls.connect({ host: "127.0.0.1", port: server.wirePort, ca: ca(), servername: "localhost", ...(alpn ? { ALPNProtocols: alpn } : {}) });
      await new Promise<void>((resolve, reject) => {
        socket.once("secureConnect", resolve);
        socket.once("error", reject);
      });
      const reader = new MessageReader(socket);
      return {
        socket,
        alpn: socket.alpnProtocol,
        exchange: async (payload: Buffer) => {
          if (payload.length > 0) socket.write(payload);
          return reader.readMessage(1 << 16);
        },
      };
    };

    // Regression (item 4): over TLS only SCRAM-SHA-256 was offered, so channel_binding=require clients could not connect.
    it("offers SCRAM-SHA-256-PLUS over TLS and node-postgres uses it (enableChannelBinding)", async () => {
      const c = new pg.Client({ ...tlsBySni(server, a.id, a.password), enableChannelBinding: true } as pg.ClientConfig);
      const conn = (c as unknown as { connection: { sendSASLInitialResponseMessage: (m: string, r: string) => void } }).connection;
      const send = conn.sendSASLInitialResponseMessage.bind(conn);
      let mechanism = "";
      conn.sendSASLInitialResponseMessage = (m, r) => {
        mechanism = m;
        send(m, r);
      };
      await c.connect();
      assert.equal(mechanism, "SCRAM-SHA-256-PLUS");
      assert.deepEqual((await c.query("SELECT 1 AS x")).rows, [{ x: 1 }]);
      await c.end();
    });

    it("refuses SCRAM-SHA-256-PLUS whose channel binding is not this connection's certificate", async () => {
      const sasl = createRequire(import.meta.url)("pg/lib/crypto/sasl.js") as {
        startSession(mechanisms: string[], stream: unknown): { mechanism: string; response: string };
        continueSession(session: unknown, password: string, serverData: string, stream: unknown): Promise<void>;
      };
      const socket = tls.connect({ host: "127.0.0.1", port: server.wirePort, ca: ca(), servername: "localhost", ALPNProtocols: ["postgresql"] });
      await new Promise<void>((resolve, reject) => {
        socket.once("secureConnect", resolve);
        socket.once("error", reject);
      });
      // Another certificate than the one this TLS session was made with: a man in the middle's, say (one byte of the signature flipped).
      const der = Buffer.from(socket.getPeerCertificate().raw);
      der[der.length - 1] = (der[der.length - 1] as number) ^ 0xff;
      const otherCert = { getPeerCertificate: () => ({ raw: der }) };
      const reader = new MessageReader(socket);
      socket.write(serialize.startup({ user: `clusterbase.${a.id}`, database: "default" }));
      const offer = await reader.readMessage();
      assert.match(offer.body.subarray(4).toString("utf8"), /^SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0/);
      const session = sasl.startSession(["SCRAM-SHA-256-PLUS"], otherCert);
      socket.write(serialize.sendSASLInitialResponseMessage(session.mechanism, session.response));
      const serverFirst = await reader.readMessage();
      await sasl.continueSession(session, a.password, serverFirst.body.subarray(4).toString("utf8"), otherCert);
      socket.write(serialize.sendSCRAMClientFinalMessage(session.response));
      const answer = await reader.readMessage();
      assert.equal(answer.type, "E");
      assert.match(answer.body.toString("utf8"), /08P01.*channel binding/s);
      socket.destroy();
    });

    it("refuses SCRAM-SHA-256-PLUS on a connection without TLS", async () => {
      const socket = net.connect(server.wirePort, "127.0.0.1");
      const reader = new MessageReader(socket);
      socket.write(serialize.startup({ user: `clusterbase.${a.id}`, database: "default" }));
      const offer = await reader.readMessage();
      assert.equal(offer.body.subarray(4).toString("utf8"), "SCRAM-SHA-256\0\0");
      socket.write(serialize.sendSASLInitialResponseMessage("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=*,r=abc"));
      const answer = await reader.readMessage();
      assert.equal(answer.type, "E");
      assert.match(answer.body.toString("utf8"), /SCRAM-SHA-256-PLUS is not supported/);
      socket.destroy();
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

    // Regression (item 1): ccpd appended client_encoding=UTF8 after the client's start-up parameters, overriding PGCLIENTENCODING.
    it("keeps the client's client_encoding (PGCLIENTENCODING=LATIN1)", async () => {
      const latin1 = (args: string[], input: Buffer) =>
        new Promise<Buffer>((resolve, reject) => {
          const child = spawn("psql", [a.url, "-X", "-At", "-v", "ON_ERROR_STOP=1", ...args], { env: { ...process.env, PGCLIENTENCODING: "LATIN1" } });
          const out: Buffer[] = [];
          let err = "";
          child.stdout.on("data", (d: Buffer) => out.push(d));
          child.stderr.on("data", (d: Buffer) => (err += d.toString()));
          child.on("exit", (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`psql failed: ${err}`))));
          child.stdin.end(input);
        });
      assert.equal((await latin1([], Buffer.from("SHOW client_encoding;\n"))).toString(), "LATIN1\n");
      // 'café' in LATIN1 bytes goes in and comes back as the same bytes; the server stores it as UTF-8.
      const out = await latin1([], Buffer.concat([Buffer.from("SELECT 'caf"), Buffer.from([0xe9]), Buffer.from("' AS s, octet_length(convert_to('caf"), Buffer.from([0xe9]), Buffer.from("', 'UTF8'));\n")]));
      assert.deepEqual(out, Buffer.concat([Buffer.from("caf"), Buffer.from([0xe9]), Buffer.from("|5\n")]));
    });

    it("psql with channel_binding=require connects over TLS", async () => {
      const url = `${a.url}?sslmode=require&channel_binding=require`;
      assert.equal((await run("psql", [url, "-X", "-At", "-c", "SELECT 'bound'"])).trim(), "bound");
    });

    it("psql on libpq 18 (the embedded Postgres package's) connects with sslnegotiation=direct and channel_binding=require", async () => {
      // psql 15 (Debian's) reads its connection options through libpq: the package's libpq 18 knows sslnegotiation.
      const lib = path.join(resolvePgBinaries().bindir, "..", "lib");
      const url = `${a.url}?sslmode=require&sslnegotiation=direct&channel_binding=require`;
      const out = await new Promise<string>((resolve, reject) =>
        execFile("psql", [url, "-X", "-At", "-c", "SELECT 'direct'"], { env: { ...process.env, LD_LIBRARY_PATH: lib } }, (err, stdout, stderr) =>
          err ? reject(new Error(`psql failed: ${stderr}`)) : resolve(stdout),
        ),
      );
      assert.equal(out.trim(), "direct");
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
