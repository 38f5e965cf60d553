import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { neon, neonConfig, NeonDbError, Pool } from "@neondatabase/serverless";
import type pg from "pg";
import type { RunningServer } from "../src/index.js";
import { connectInstance } from "./support/instance-sql.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

/**
 * The unmodified @neondatabase/serverless driver against a real ccpd's POST /sql:
 * what it returns must be what node-postgres returns over the instance socket.
 */
describe("Neon serverless driver over POST /sql", () => {
  let t: TestServer;
  let server: RunningServer;
  let a: { id: string; token: string; url: string };
  let b: { id: string; token: string; url: string };
  let direct: pg.Client;

  before(async () => {
    t = await startTestServer("neon");
    server = t.server;
    const connection = (c: { database: { id: string }; token: string }) => ({
      id: c.database.id,
      token: c.token,
      url: `postgresql://clusterbase:${c.token}@${c.database.id}.${server.config.domain}/default`,
    });
    a = connection(await server.databases.create("neon-a"));
    b = connection(await server.databases.create("neon-b"));
    neonConfig.fetchEndpoint = `${server.url}/sql`;

    direct = await connectInstance(server, a.id);
    await direct.query(`
      CREATE TABLE things (id int PRIMARY KEY, name text, big bigint, price numeric, ok boolean, tags text[], meta jsonb,
                           born date, seen timestamptz, at timestamp, raw bytea, span interval, uid uuid, ratio float8);
      INSERT INTO things VALUES
        (1, 'Zoë ✓', 9007199254740993, 12.50, true, '{a,"b c"}', '{"k": [1, 2]}', '2000-02-29', '2024-05-01 12:34:56.789123+02',
         '2024-05-01 12:34:56', '\\xdeadbeef', '1 day 02:03:04', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 0.1),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
      CREATE TABLE ledger (n int PRIMARY KEY);
    `);
    await direct.query("CREATE DATABASE other");
  });
  after(async () => {
    await direct?.end();
    await t?.dispose();
  });

  /**
   * Values as plain data: the driver bundles its own Buffer and pg-types, so a
   * bytea or interval from it has another prototype than node-postgres's.
   */
  const plain = (v: unknown): unknown => {
    if (v === null || typeof v !== "object" || v instanceof Date) return v;
    if (v instanceof Uint8Array) return `\\x${Buffer.from(v).toString("hex")}`;
    if (Array.isArray(v)) return v.map(plain);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  };

  /** pg's field descriptions as plain objects, to compare with the JSON the driver got. */
  const plainFields = (fields: readonly object[]) => fields.map((f) => ({ ...f }));

  async function neonError(promise: Promise<unknown>): Promise<NeonDbError> {
    try {
      await promise;
    } catch (err) {
      assert.ok(err instanceof NeonDbError, `expected a NeonDbError, got ${String(err)}`);
      return err;
    }
    assert.fail("expected the query to fail");
  }

  it("tagged-template queries with int, text, bool, null, json, timestamptz, bigint and numeric params return what node-postgres returns", async () => {
    const sql = neon(a.url);
    const seen = new Date("2024-05-01T10:34:56.789Z");
    const meta = { k: [1, 2], s: "x\"y" };
    const viaHttp = await sql`
      SELECT ${42}::int AS i, ${"Zoë ✓"}::text AS t, ${true}::bool AS b, ${null}::text AS n, ${meta}::jsonb AS j,
             ${seen}::timestamptz AS ts, ${"9007199254740993"}::int8 AS big, ${"12.500"}::numeric AS num`;
    const viaSocket = await direct.query(
      "SELECT $1::int AS i, $2::text AS t, $3::bool AS b, $4::text AS n, $5::jsonb AS j, $6::timestamptz AS ts, $7::int8 AS big, $8::numeric AS num",
      [42, "Zoë ✓", true, null, meta, seen, "9007199254740993", "12.500"],
    );
    assert.deepEqual(viaHttp, viaSocket.rows);
    // The driver parses types as node-postgres does: bigint and numeric stay strings.
    assert.deepEqual(viaHttp[0], { i: 42, t: "Zoë ✓", b: true, n: null, j: meta, ts: seen, big: "9007199254740993", num: "12.500" });

    const all = "SELECT * FROM things ORDER BY id";
    assert.deepEqual(plain(await sql.query(all)), plain((await direct.query(all)).rows));
    assert.deepEqual(await sql.query("SELECT name FROM things WHERE id = $1", [1]), [{ name: "Zoë ✓" }]);
  });

  it("arrayMode returns rows as arrays, as node-postgres's rowMode 'array'", async () => {
    const text = "SELECT id, name, tags, meta, seen, raw, span FROM things ORDER BY id";
    const expected = (await direct.query({ text, rowMode: "array" })).rows;
    assert.deepEqual(plain(await neon(a.url, { arrayMode: true }).query(text)), plain(expected));
    assert.deepEqual(plain(await neon(a.url).query(text, [], { arrayMode: true })), plain(expected));
  });

  it("fullResults carries fields, rowCount and command as node-postgres reports them", async () => {
    const sql = neon(a.url, { fullResults: true });
    const text = "SELECT id, name AS label, big, 1 + 1 AS two FROM things ORDER BY id";
    const viaHttp = await sql.query(text);
    const viaSocket = await direct.query(text);
    assert.deepEqual(viaHttp.fields, plainFields(viaSocket.fields));
    assert.ok(viaHttp.fields[0]?.tableID, "a column of a table has its table's oid");
    assert.equal(viaHttp.rowCount, 2);
    assert.equal(viaHttp.command, "SELECT");
    assert.equal(viaHttp.rowAsArray, false);
    assert.deepEqual(viaHttp.rows, viaSocket.rows);

    const inserted = await sql`INSERT INTO ledger VALUES (100), (101) RETURNING n`;
    assert.equal(inserted.command, "INSERT");
    assert.equal(inserted.rowCount, 2);
    assert.deepEqual(inserted.rows, [{ n: 100 }, { n: 101 }]);
    const deleted = await sql`DELETE FROM ledger WHERE n >= 100`;
    assert.deepEqual([deleted.command, deleted.rowCount, deleted.fields], ["DELETE", 2, []]);

    const arrays = await neon(a.url, { fullResults: true, arrayMode: true })`SELECT 1 AS x, 'y' AS y`;
    assert.equal(arrays.rowAsArray, true);
    assert.deepEqual(arrays.rows, [[1, "y"]]);
  });

  it("transaction([...]) commits every statement and returns one result each", async () => {
    const sql = neon(a.url);
    const results = await sql.transaction([sql`INSERT INTO ledger VALUES (1), (2)`, sql`INSERT INTO ledger VALUES (${3})`, sql`SELECT count(*)::int AS n FROM ledger`]);
    assert.equal(results.length, 3);
    assert.deepEqual(results[2], [{ n: 3 }]);
    assert.deepEqual((await direct.query("SELECT n FROM ledger ORDER BY n")).rows, [{ n: 1 }, { n: 2 }, { n: 3 }]);

    // Result options apply to every query of a transaction.
    const full = await sql.transaction((txn) => [txn`SELECT 1 AS one`, txn.query("UPDATE ledger SET n = n WHERE n < $1", [3])], { fullResults: true, arrayMode: true });
    assert.deepEqual(
      full.map((r) => [r.command, r.rowCount, r.rows, r.rowAsArray]),
      [
        ["SELECT", 1, [[1]], true],
        ["UPDATE", 2, [], true],
      ],
    );
  });

  it("a failing transaction commits nothing and raises the Postgres error", async () => {
    const sql = neon(a.url);
    const before = (await direct.query("SELECT count(*)::int AS n FROM ledger")).rows;
    const err = await neonError(sql.transaction([sql`INSERT INTO ledger VALUES (10)`, sql`INSERT INTO ledger VALUES (1)`, sql`INSERT INTO ledger VALUES (11)`]));
    assert.equal(err.code, "23505");
    assert.equal(err.constraint, "ledger_pkey");
    assert.equal(err.table, "ledger");
    assert.match(err.detail ?? "", /Key \(n\)=\(1\) already exists/);
    assert.deepEqual((await direct.query("SELECT count(*)::int AS n FROM ledger")).rows, before);
  });

  it("transaction options set the isolation level, read-only and deferrable; a write in a read-only transaction fails", async () => {
    const sql = neon(a.url);
    const settings = await sql.transaction(
      [sql`SHOW transaction_isolation`, sql`SHOW transaction_read_only`, sql`SHOW transaction_deferrable`],
      { isolationLevel: "Serializable", readOnly: true, deferrable: true },
    );
    assert.deepEqual(settings, [[{ transaction_isolation: "serializable" }], [{ transaction_read_only: "on" }], [{ transaction_deferrable: "on" }]]);
    const repeatable = await sql.transaction([sql`SHOW transaction_isolation`], { isolationLevel: "RepeatableRead" });
    assert.deepEqual(repeatable, [[{ transaction_isolation: "repeatable read" }]]);

    const err = await neonError(sql.transaction([sql`INSERT INTO ledger VALUES (50)`], { readOnly: true }));
    assert.equal(err.code, "25006");
    assert.equal((await direct.query("SELECT count(*)::int AS n FROM ledger WHERE n = 50")).rows[0].n, 0);
    // readOnly: false is a normal read-write transaction.
    await sql.transaction([sql`INSERT INTO ledger VALUES (50)`, sql`DELETE FROM ledger WHERE n = 50`], { readOnly: false });
  });

  it("a Postgres error surfaces as a NeonDbError with the fields node-postgres's DatabaseError has", async () => {
    const text = "SELECT id FROM things WHERE nope = 1";
    const err = await neonError(neon(a.url).query(text));
    const expected = await direct.query(text).then(
      () => assert.fail("expected an error"),
      (e: pg.DatabaseError) => e,
    );
    assert.equal(err.message, 'column "nope" does not exist');
    assert.equal(err.code, "42703");
    assert.equal(err.position, "29");
    assert.equal(err.severity, "ERROR");
    for (const k of ["message", "code", "severity", "detail", "hint", "position", "where", "schema", "table", "column", "dataType", "constraint", "file", "line", "routine"] as const) {
      assert.equal(err[k], expected[k], k);
    }
    const fn = await neonError(neon(a.url)`SELECT 1/0`);
    assert.equal(fn.code, "22012");
  });

  it("a wrong token and the token of another database get the same error; a missing token too", async () => {
    const wrong = await neonError(neon(a.url.replace(a.token, "not-the-token"))`SELECT 1`);
    const others = await neonError(neon(a.url.replace(a.token, b.token))`SELECT 1`);
    const none = await neonError(neon(a.url.replace(`:${a.token}`, ""))`SELECT 1`);
    assert.equal(wrong.message, "Invalid or missing database token.");
    assert.equal(wrong.code, "unauthorized");
    assert.deepEqual([others.message, others.code], [wrong.message, wrong.code]);
    assert.deepEqual([none.message, none.code], [wrong.message, wrong.code]);
    // The other database's own connection string works.
    assert.deepEqual(await neon(b.url)`SELECT 1 AS one`, [{ one: 1 }]);
  });

  it("an unknown database id, a host outside ccp's domain and a wrong user are errors", async () => {
    const unknown = await neonError(neon(a.url.replace(a.id, "db-000000000000"))`SELECT 1`);
    assert.equal(unknown.code, "not_found");
    assert.match(unknown.message, /db-000000000000/);
    const elsewhere = await neonError(neon(a.url.replace(`.${server.config.domain}`, ".example.com"))`SELECT 1`);
    assert.equal(elsewhere.code, "not_found");
    const user = await neonError(neon(a.url.replace("clusterbase:", "alice:"))`SELECT 1`);
    assert.equal(user.code, "invalid_request");
    assert.match(user.message, /clusterbase/);
  });

  it("the connection string's path selects the Postgres database", async () => {
    assert.deepEqual(await neon(a.url.replace(/\/default$/, "/other"))`SELECT current_database() AS db`, [{ db: "other" }]);
    const missing = await neonError(neon(a.url.replace(/\/default$/, "/nosuchdb"))`SELECT 1`);
    assert.equal(missing.code, "3D000");
  });

  it("Pool.query with poolQueryViaFetch goes over /sql too", async () => {
    neonConfig.poolQueryViaFetch = true;
    const pool = new Pool({ connectionString: a.url });
    try {
      const r = await pool.query("SELECT $1::int + 1 AS n", [41]);
      assert.deepEqual(r.rows, [{ n: 42 }]);
      assert.equal(r.command, "SELECT");
    } finally {
      neonConfig.poolQueryViaFetch = false;
      await pool.end();
    }
  });

  it("answers the protocol's JSON directly: object rows without array mode, JSON values without raw text", async () => {
    const res = await fetch(`${server.url}/sql`, {
      method: "POST",
      headers: { "Neon-Connection-String": a.url },
      body: JSON.stringify({ query: "SELECT id, ok, meta FROM things WHERE id = $1", params: [1] }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { rows: unknown[]; rowAsArray: boolean; fields: { name: string; format: string }[] };
    assert.deepEqual(body.rows, [{ id: 1, ok: true, meta: { k: [1, 2] } }]);
    assert.equal(body.rowAsArray, false);
    assert.deepEqual(
      body.fields.map((f) => [f.name, f.format]),
      [["id", "text"], ["ok", "text"], ["meta", "text"]],
    );

    const bad = await fetch(`${server.url}/sql`, { method: "POST", headers: { "Neon-Connection-String": a.url }, body: "{not json" });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, "invalid_request");
    const level = await fetch(`${server.url}/sql`, {
      method: "POST",
      headers: { "Neon-Connection-String": a.url, "Neon-Batch-Isolation-Level": "Chaos" },
      body: JSON.stringify({ queries: [{ query: "SELECT 1" }] }),
    });
    assert.equal(level.status, 400);
    assert.match(((await level.json()) as { message: string }).message, /isolation level/);

    // Neon's JSON parsing stays inside /sql: ccp's own API still insists on JSON bodies.
    const api = await fetch(`${server.url}/v1/databases/${a.id}/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${a.token}`, "content-type": "application/x-www-form-urlencoded" },
      body: JSON.stringify({ sql: "SELECT 1" }),
    });
    assert.equal(api.status, 400);
    assert.match(((await api.json()) as { error: { message: string } }).error.message, /Unsupported Media Type/);
    const openapi = (await (await fetch(`${server.url}/v1/openapi.json`)).json()) as { paths: Record<string, unknown> };
    assert.ok(openapi.paths["/sql"], "POST /sql is described in the OpenAPI document");
  });

  it("a database that is not running answers 503 with Retry-After, which the driver reports as a server error", async () => {
    await server.driver.stop(b.id);
    try {
      const err = await neonError(neon(b.url)`SELECT 1`);
      assert.match(err.message, /^Server error \(HTTP status 503\): .*not ready/);
      const res = await fetch(`${server.url}/sql`, { method: "POST", headers: { "Neon-Connection-String": b.url }, body: JSON.stringify({ query: "SELECT 1" }) });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("retry-after"), "1");
    } finally {
      await server.driver.start(b.id);
    }
  });
});
