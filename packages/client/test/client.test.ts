import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { CcpError, ConnectionError, createClient, PostgresError, sql, type Client, type Fetch } from "@ccp/client";
import { resolveServerConfig, startServer, type RunningServer } from "../../server/src/index.js";

describe("sql tag (no server)", () => {
  it("turns interpolations into $n parameters and never into SQL text", () => {
    const name = "O'Brien'; DROP TABLE users; --";
    const q = sql`SELECT * FROM users WHERE id = ${42} AND name = ${name}`;
    assert.equal(q.sql, "SELECT * FROM users WHERE id = $1 AND name = $2");
    assert.deepEqual(q.params, [42, name]);
    assert.deepEqual(JSON.parse(JSON.stringify(q)), { sql: q.sql, params: [42, name] });
  });

  it("splices nested fragments as SQL and renumbers their placeholders", () => {
    const where = sql`a = ${1} AND b = ${"x"}`;
    const q = sql`SELECT ${"first"} FROM t WHERE ${where} OR c = ${true} LIMIT ${10}`;
    assert.equal(q.sql, "SELECT $1 FROM t WHERE a = $2 AND b = $3 OR c = $4 LIMIT $5");
    assert.deepEqual(q.params, ["first", 1, "x", true, 10]);
    assert.equal(sql`SELECT 1`.sql, "SELECT 1");
    assert.deepEqual(sql`SELECT 1`.params, []);
  });
});

describe("createClient (no server)", () => {
  it("rejects a missing URL or token up front", () => {
    assert.throws(() => createClient({ url: "not a url", token: "t" }), TypeError);
    assert.throws(() => createClient({ url: "http://127.0.0.1:1", token: "" }), TypeError);
  });

  it("reports a body that is not a gateway answer as bad_response, and an HTML 502 with its status", async () => {
    const html: Fetch = async () => new Response("<html>hello</html>", { status: 200 });
    const err = await createClient({ url: "http://x.test", token: "t", fetch: html }).query("SELECT 1").catch((e: unknown) => e);
    assert.ok(err instanceof CcpError);
    assert.equal(err.code, "bad_response");
    const proxy: Fetch = async () => new Response("<html>Bad Gateway</html>", { status: 502 });
    const err2 = await createClient({ url: "http://x.test", token: "t", fetch: proxy }).query("SELECT 1").catch((e: unknown) => e);
    assert.ok(err2 instanceof CcpError && !(err2 instanceof PostgresError));
    assert.equal(err2.code, "http_502");
    assert.equal(err2.status, 502);
  });

  it("sends JSON-hostile values as Postgres understands them: bigint, bytes, undefined", async () => {
    let sent: unknown;
    const capture: Fetch = async (_url, init) => {
      sent = JSON.parse(init.body as string);
      return Response.json({ rows: [], fields: [], row_count: 0, command: "SELECT" });
    };
    await createClient({ url: "http://x.test", token: "t", fetch: capture }).query("SELECT $1, $2, $3, $4", [2n ** 70n, Buffer.from([0, 255]), undefined, new Uint8Array([1])]);
    assert.deepEqual(sent, { sql: "SELECT $1, $2, $3, $4", params: ["1180591620717411303424", "\\x00ff", null, "\\x01"] });
  });
});

describe("@ccp/client against a real ccpd", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "ccp-client-"));
  let server: RunningServer;
  let db: Client;
  let databaseId: string;
  let token: string;

  before(async () => {
    server = await startServer(
      resolveServerConfig({ dataDir: path.join(root, "data"), port: 0 }, { ...process.env, XDG_CONFIG_HOME: path.join(root, "config"), CCP_LOG_LEVEL: "silent" }),
    );
    const created = await server.databases.create("client-test");
    databaseId = created.database.id;
    token = created.token;
    db = createClient({ url: server.url, databaseId, token });
    await db.execute("CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, meta jsonb)");
  });
  after(async () => {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("query: rows typed by the gateway, fields with type OIDs, rowCount and command", async () => {
    const r = await db.query<{ n: number; big: string; t: string; b: boolean; z: null; arr: number[] }>(
      "SELECT 1 AS n, 9007199254740993::int8 AS big, $1::text AS t, true AS b, NULL AS z, ARRAY[1,2] AS arr",
      ["hi"],
    );
    assert.deepEqual(r.rows, [{ n: 1, big: "9007199254740993", t: "hi", b: true, z: null, arr: [1, 2] }]);
    assert.deepEqual(
      r.fields.map((f) => [f.name, f.typeOid]),
      [["n", 23], ["big", 20], ["t", 25], ["b", 16], ["z", 25], ["arr", 1007]],
    );
    assert.equal(r.rowCount, 1);
    assert.equal(r.command, "SELECT");
  });

  it("execute: rowsAffected for writes, rows and fields with RETURNING", async () => {
    const ins = await db.execute("INSERT INTO users (name, email) VALUES ($1, $2), ($3, $4)", ["Alice", "alice@co.com", "Bob", "bob@co.com"]);
    assert.deepEqual(ins, { command: "INSERT", rowsAffected: 2 });
    const upd = await db.execute<{ id: number; name: string }>("UPDATE users SET name = upper(name) WHERE email = $1 RETURNING id, name", ["bob@co.com"]);
    assert.equal(upd.command, "UPDATE");
    assert.equal(upd.rowsAffected, 1);
    assert.deepEqual(upd.rows?.map((r) => r.name), ["BOB"]);
    assert.deepEqual(upd.fields?.map((f) => f.name), ["id", "name"]);
    const none = await db.execute("DELETE FROM users WHERE false");
    assert.deepEqual(none, { command: "DELETE", rowsAffected: 0 });
  });

  it("round-trips parameter types: bigint, bytea, Date, null, arrays, JSON objects", async () => {
    const when = new Date("2024-05-01T12:00:00.123Z");
    const [row] = await db.sql<{ big: string; bytes: string; ts: string; nothing: null; ids: number[]; meta: unknown }>`
      SELECT ${2n ** 62n}::int8 AS big, ${Buffer.from("hi")}::bytea AS bytes, ${when}::timestamptz AS ts,
             ${null}::text AS nothing, ${[3, 1, 2]}::int[] AS ids, ${{ a: [1, { b: "c" }] }}::jsonb AS meta`;
    assert.deepEqual(row, { big: "4611686018427387904", bytes: "\\x6869", ts: "2024-05-01T12:00:00.123Z", nothing: null, ids: [3, 1, 2], meta: { a: [1, { b: "c" }] } });
  });

  it("sql tag: values are bound as parameters, so quotes and injection attempts stay literal", async () => {
    const evil = "Robert'); DROP TABLE users; --";
    const quoted = `O'Brien "the" \\ $1 ${"${x}"}`;
    await db.execute(sql`INSERT INTO users (name, email) VALUES (${evil}, ${"evil@co.com"}), (${quoted}, ${"quote@co.com"})`);
    const rows = await db.sql<{ name: string }>`SELECT name FROM users WHERE email IN (${"evil@co.com"}, ${"quote@co.com"}) ORDER BY email`;
    assert.deepEqual(rows.map((r) => r.name), [evil, quoted]);
    // The table survived, and an injection in a WHERE value matches nothing instead of everything.
    const [count] = await db.sql<{ n: number }>`SELECT count(*)::int AS n FROM users WHERE email = ${"x' OR '1'='1"}`;
    assert.equal(count?.n, 0);
    const all = await db.query("SELECT count(*)::int AS n FROM users");
    assert.ok((all.rows[0]?.["n"] as number) >= 4);
  });

  it("PostgresError for a syntax error: SQLSTATE, message, position, severity", async () => {
    const err = await db.query("SELECT * FRM users").catch((e: unknown) => e);
    assert.ok(err instanceof PostgresError, String(err));
    assert.ok(err instanceof CcpError);
    assert.equal(err.code, "42601");
    assert.equal(err.status, 400);
    assert.equal(err.message, 'syntax error at or near "FRM"');
    assert.equal(err.position, 10);
    assert.equal(err.severity, "ERROR");
    assert.equal(err.statementIndex, undefined);
  });

  it("PostgresError for a unique violation: constraint, detail, schema and table", async () => {
    const err = await db.execute("INSERT INTO users (name, email) VALUES ('Dup', 'alice@co.com')").catch((e: unknown) => e);
    assert.ok(err instanceof PostgresError, String(err));
    assert.equal(err.code, "23505");
    assert.equal(err.constraint, "users_email_key");
    assert.equal(err.detail, "Key (email)=(alice@co.com) already exists.");
    assert.equal(err.schema, "public");
    assert.equal(err.table, "users");
    const nn = await db.execute("INSERT INTO users (name) VALUES (NULL)").catch((e: unknown) => e);
    assert.ok(nn instanceof PostgresError);
    assert.equal(nn.code, "23502");
    assert.equal(nn.column, "name");
  });

  it("transaction: one result per statement, array form and sql-callback form", async () => {
    const results = await db.transaction([
      { sql: "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING name", params: ["Carol", "carol@co.com"] },
      sql`UPDATE users SET meta = ${{ vip: true }} WHERE email = ${"carol@co.com"}`,
      { sql: "SELECT count(*)::int AS n FROM users WHERE meta->>'vip' = 'true'" },
    ]);
    assert.deepEqual(
      results.map((r) => [r.command, r.rowsAffected, r.rows]),
      [["INSERT", 1, [{ name: "Carol" }]], ["UPDATE", 1, undefined], ["SELECT", 1, [{ n: 1 }]]],
    );
    const viaCallback = await db.transaction((q) => [q`DELETE FROM users WHERE email = ${"carol@co.com"}`, q`SELECT ${"done"}::text AS status`]);
    assert.deepEqual(viaCallback.map((r) => r.rowsAffected), [1, 1]);
    assert.deepEqual(viaCallback[1]?.rows, [{ status: "done" }]);
  });

  it("transaction is atomic: a failing second statement commits nothing and reports statementIndex 1", async () => {
    const err = await db
      .transaction([sql`INSERT INTO users (name, email) VALUES (${"Dave"}, ${"dave@co.com"})`, sql`INSERT INTO users (name, email) VALUES (${"Dup"}, ${"alice@co.com"})`])
      .catch((e: unknown) => e);
    assert.ok(err instanceof PostgresError, String(err));
    assert.equal(err.code, "23505");
    assert.equal(err.statementIndex, 1);
    assert.deepEqual(await db.sql`SELECT 1 FROM users WHERE email = ${"dave@co.com"}`, []);
  });

  it("transaction options reach BEGIN: isolation level, read only", async () => {
    const [r] = await db.transaction([{ sql: "SELECT current_setting('transaction_isolation') AS i, current_setting('transaction_read_only') AS ro" }], {
      isolationLevel: "serializable",
      readOnly: true,
    });
    assert.deepEqual(r?.rows, [{ i: "serializable", ro: "on" }]);
    const err = await db.transaction([sql`DELETE FROM users`], { readOnly: true }).catch((e: unknown) => e);
    assert.ok(err instanceof PostgresError, String(err));
    assert.equal(err.code, "25006");
  });

  it("a wrong token is a CcpError unauthorized (401), not a PostgresError", async () => {
    const err = await createClient({ url: server.url, databaseId, token: "0".repeat(64) })
      .query("SELECT 1")
      .catch((e: unknown) => e);
    assert.ok(err instanceof CcpError, String(err));
    assert.ok(!(err instanceof PostgresError));
    assert.equal(err.code, "unauthorized");
    assert.equal(err.status, 401);
    assert.match(err.hint ?? "", /Bearer/);
  });

  it("an unknown database is not_found (404)", async () => {
    const err = await createClient({ url: server.url, databaseId: "db-000000000000", token }).query("SELECT 1").catch((e: unknown) => e);
    assert.ok(err instanceof CcpError);
    assert.equal(err.code, "not_found");
    assert.equal(err.status, 404);
  });

  it("routes by host name when the URL is the database's own host", async () => {
    // db-<id>.localhost needs a resolver, and fetch will not send a Host header of our choosing:
    // a fetch over node:http that connects to ccpd and sends the database's host name.
    const seen: string[] = [];
    const viaHost: Fetch = (url, init) => {
      seen.push(url);
      const u = new URL(url);
      const target = new URL(server.url);
      return new Promise((resolve, reject) => {
        const req = request(
          { host: target.hostname, port: target.port, path: u.pathname, method: init.method, headers: { ...(init.headers as Record<string, string>), host: u.host } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0 })));
          },
        );
        req.on("error", reject);
        req.end(init.body as string);
      });
    };
    const byHost = createClient({ url: `http://${databaseId}.localhost/`, token, fetch: viaHost });
    const r = await byHost.query("SELECT current_database() AS db");
    assert.deepEqual(r.rows, [{ db: "default" }]);
    assert.deepEqual(seen, [`http://${databaseId}.localhost/query`]);
  });

  it("a database that is not running is not_ready (503) with retryAfter", async () => {
    const { database, token: t } = await server.databases.create("client-stopped");
    await server.driver.stop(database.id);
    const err = await createClient({ url: server.url, databaseId: database.id, token: t }).query("SELECT 1").catch((e: unknown) => e);
    assert.ok(err instanceof CcpError, String(err));
    assert.equal(err.code, "not_ready");
    assert.equal(err.status, 503);
    assert.equal(err.retryAfter, 1);
  });

  it("ConnectionError when nothing answers", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const err = await createClient({ url: `http://127.0.0.1:${port}`, databaseId, token }).query("SELECT 1").catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionError, String(err));
    assert.ok(err instanceof CcpError);
    assert.equal(err.code, "connection_failed");
    assert.equal(err.status, 0);
    assert.match(err.message, /ECONNREFUSED/);
    assert.ok(err.cause);
  });
});
