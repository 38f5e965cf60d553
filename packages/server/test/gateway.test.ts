import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import type pg from "pg";
import type { RunningServer } from "../src/index.js";
import { connectInstance } from "./support/instance-sql.js";
import { poll } from "./support/poll.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

/**
 * The SQL-over-HTTP gateway against real instances: what HTTP returns must be
 * what node-postgres returns over the socket, after the README's type mapping.
 */
describe("SQL over HTTP gateway", () => {
  let t: TestServer;
  let server: RunningServer;
  let a: { id: string; token: string };
  let b: { id: string; token: string };
  let direct: pg.Client;

  before(async () => {
    // One pooled connection, so consecutive requests share a session: the leak tests then can fail.
    t = await startTestServer("gateway", {}, (c) => ({ ...c, gateway: { poolSize: 1, statementTimeoutMs: 1_000, maxResponseBytes: 1024 * 1024, maxBodyBytes: 64 * 1024 } }));
    server = t.server;
    const ca = await server.databases.create("gw-a");
    const cb = await server.databases.create("gw-b");
    a = { id: ca.database.id, token: ca.token };
    b = { id: cb.database.id, token: cb.token };
    direct = await connectInstance(server, a.id);
    await direct.query(`
      CREATE TABLE people (id int PRIMARY KEY, name text, email text UNIQUE, score numeric, tags text[], meta jsonb, born date, seen timestamptz);
      INSERT INTO people VALUES
        (1, 'Alice', 'alice@co.com', 12.5, '{a,b}', '{"k": [1, 2]}', '2000-02-29', '2024-05-01 12:34:56.789+00'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, 'Zoë ✓', 'z@co.com', -0.000001, '{}', 'null', '1999-12-31', '1970-01-01 00:00:00+00');
      CREATE TABLE leak (n int);
    `);
  });
  after(async () => {
    await direct?.end();
    await t?.dispose();
  });

  async function call(endpoint: string, body: unknown, options: { token?: string | null; id?: string; raw?: string; headers?: Record<string, string> } = {}) {
    const token = options.token === undefined ? a.token : options.token;
    const headers: Record<string, string> = { "content-type": "application/json", ...options.headers };
    if (token !== null) headers["authorization"] = `Bearer ${token}`;
    const res = await fetch(`${server.url}/v1/databases/${options.id ?? a.id}/${endpoint}`, {
      method: "POST",
      headers,
      body: options.raw ?? JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: JSON.parse(text) as Record<string, unknown> & { error?: Record<string, unknown> } };
  }

  // --- the documented mapping, applied to node-postgres's values ---
  function documented(value: unknown, oid: number): unknown {
    if (value === null) return null;
    if (value instanceof Date) {
      if (oid === 1082) {
        const p = (n: number) => String(n).padStart(2, "0");
        return `${value.getFullYear()}-${p(value.getMonth() + 1)}-${p(value.getDate())}`;
      }
      return value.getTime();
    }
    if (Buffer.isBuffer(value)) return `\\x${value.toString("hex")}`;
    if (typeof value === "number" && !Number.isFinite(value)) return String(value);
    if (Array.isArray(value)) return value.map((v) => documented(v, ARRAY_ELEMENT[oid] ?? 0));
    return value;
  }
  const ARRAY_ELEMENT: Record<number, number> = { 1185: 1184, 1115: 1114, 1182: 1082, 1001: 17, 1022: 701 };
  const TIME_OIDS = new Set([1184, 1114]);
  function comparable(value: unknown, oid: number): unknown {
    if (value === null) return null;
    if (TIME_OIDS.has(oid) && typeof value === "string") return Date.parse(value);
    if (Array.isArray(value)) return value.map((v) => comparable(v, ARRAY_ELEMENT[oid] ?? 0));
    return value;
  }

  const corpus: { name: string; sql: string; params?: unknown[] }[] = [
    { name: "integers and floats", sql: "SELECT 1::int2 a, 2::int4 b, 9223372036854775807::int8 c, 4.5::float4 d, 6.25::float8 e, 42::oid f" },
    { name: "numeric keeps every digit", sql: "SELECT 123456789012345678901234567890.123456789::numeric n, 0.1::numeric + 0.2::numeric s" },
    { name: "special floats", sql: "SELECT 'NaN'::float8 a, 'Infinity'::float8 b, '-Infinity'::float4 c" },
    { name: "booleans and NULLs", sql: "SELECT true t, false f, NULL::bool n, NULL::int i, NULL::text s" },
    { name: "text", sql: "SELECT 'plain' a, '' b, 'ünïcödé ✓ 😀' c, $$a\"b'c\\d$$ d, 'x'::char(3) e, 'v'::varchar(5) f, E'line1\\nline2' g" },
    { name: "json and jsonb", sql: `SELECT '{"a":[1,2,{"b":null}]}'::json j, '{"z":1,"a":2}'::jsonb jb, 'null'::jsonb n, '[]'::jsonb e, '"s"'::jsonb s, '1.5'::jsonb num` },
    { name: "timestamps and dates", sql: "SELECT '2024-05-01 12:34:56.789+00'::timestamptz a, '2024-05-01 12:34:56'::timestamp b, '2024-02-29'::date c, '2024-05-01 23:00:00-07'::timestamptz d" },
    { name: "bytea", sql: "SELECT '\\x00ff10'::bytea a, ''::bytea b, decode('68656c6c6f', 'hex') c" },
    { name: "arrays", sql: "SELECT ARRAY[1,2,3] a, ARRAY['a',NULL,'c'] b, ARRAY[[1,2],[3,4]] c, '{}'::int[] d, ARRAY[true,false] e, ARRAY[1::int8, 2] f, ARRAY['{\"a\":1}'::jsonb] g, ARRAY['2024-01-01 00:00:00+00'::timestamptz] h, ARRAY['quote\"s', 'com,ma', 'brace{}'] i" },
    { name: "uuid and inet", sql: "SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid u, '10.0.0.1/8'::inet i, 'Tue'::text d" },
    { name: "table rows with NULLs", sql: "SELECT * FROM people ORDER BY id" },
    { name: "empty result", sql: "SELECT * FROM people WHERE id < 0" },
    { name: "empty generate_series", sql: "SELECT g FROM generate_series(1, 0) g" },
    { name: "parameters", sql: "SELECT $1::int + $2::int AS sum, $3::text AS t, $4::jsonb AS j, $5::bool AS b, $6::text AS n", params: [1, 2, "it's", { k: [1, "x"] }, true, null] },
    { name: "parameterised lookup", sql: "SELECT name, score FROM people WHERE id = $1", params: [1] },
    { name: "bigint parameter as string", sql: "SELECT $1::int8 + 1 AS big", params: ["9223372036854775806"] },
    { name: "many rows", sql: "SELECT g, g::text || 'x' AS s FROM generate_series(1, 2000) g" },
  ];

  for (const c of corpus) {
    it(`returns what node-postgres returns: ${c.name}`, async () => {
      const expected = await direct.query(c.sql, c.params);
      const res = await call("query", { sql: c.sql, params: c.params });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const fields = res.body["fields"] as { name: string; type_oid: number }[];
      assert.deepEqual(
        fields.map((f) => [f.name, f.type_oid]),
        expected.fields.map((f) => [f.name, f.dataTypeID]),
      );
      const rows = res.body["rows"] as Record<string, unknown>[];
      assert.equal(rows.length, expected.rows.length);
      assert.equal(res.body["row_count"], expected.rowCount);
      for (let i = 0; i < rows.length; i++) {
        for (const f of expected.fields) {
          const want = comparable(documented((expected.rows[i] as Record<string, unknown>)[f.name], f.dataTypeID), f.dataTypeID);
          const got = comparable((rows[i] as Record<string, unknown>)[f.name], f.dataTypeID);
          assert.deepEqual(got, want, `row ${i} column ${f.name} (oid ${f.dataTypeID})`);
        }
      }
    });
  }

  it("keeps microseconds in timestamps and shows them as ISO 8601", async () => {
    const res = await call("query", { sql: "SELECT '2024-05-01 12:34:56.123456+02'::timestamptz a, '2024-05-01 12:34:56.5'::timestamp b" });
    assert.deepEqual(res.body["rows"], [{ a: "2024-05-01T10:34:56.123456Z", b: "2024-05-01T12:34:56.5" }]);
  });

  const errorCorpus = [
    { name: "syntax error", sql: "SELEC 1" },
    { name: "undefined table", sql: "SELECT * FROM nope" },
    { name: "division by zero", sql: "SELECT 1/0" },
    { name: "unique violation", sql: "INSERT INTO people (id, email) VALUES (9, 'alice@co.com')" },
    { name: "bad parameter type", sql: "SELECT $1::int", params: ["not a number"] },
    { name: "wrong parameter count", sql: "SELECT $1::int", params: [1, 2] },
  ];
  for (const c of errorCorpus) {
    it(`passes Postgres errors through as 400 with their fields: ${c.name}`, async () => {
      const err = await direct.query(c.sql, c.params).then(
        () => assert.fail("expected an error"),
        (e: pg.DatabaseError) => e,
      );
      const res = await call("query", { sql: c.sql, params: c.params });
      assert.equal(res.status, 400);
      const e = res.body.error as Record<string, unknown>;
      assert.equal(e["code"], err.code);
      assert.equal(e["message"], err.message);
      assert.equal(e["detail"], err.detail);
      assert.equal(e["hint"], err.hint);
      assert.equal(e["constraint"], err.constraint);
      assert.equal(e["position"], err.position === undefined ? undefined : Number(err.position));
    });
  }

  describe("/execute and /transaction", () => {
    it("reports rows affected, and rows with RETURNING", async () => {
      const ins = await call("execute", { sql: "INSERT INTO leak VALUES (1), (2)" });
      assert.deepEqual(ins.body, { command: "INSERT", rows_affected: 2 });
      const ret = await call("execute", { sql: "UPDATE leak SET n = n * 10 RETURNING n", params: [] });
      assert.equal(ret.body["rows_affected"], 2);
      assert.deepEqual(ret.body["rows"], [{ n: 10 }, { n: 20 }]);
      const del = await call("execute", { sql: "DELETE FROM leak WHERE n = $1", params: [10] });
      assert.equal(del.body["rows_affected"], 1);
      await call("execute", { sql: "DELETE FROM leak" });
    });

    it("commits every statement of a transaction, one result each", async () => {
      const res = await call("transaction", {
        statements: [
          { sql: "INSERT INTO leak VALUES ($1)", params: [100] },
          { sql: "INSERT INTO leak VALUES ($1) RETURNING n", params: [200] },
          { sql: "SELECT count(*)::int AS c FROM leak" },
        ],
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body["results"], [
        { command: "INSERT", rows_affected: 1 },
        { command: "INSERT", rows_affected: 1, rows: [{ n: 200 }], fields: [{ name: "n", type_oid: 23 }] },
        { command: "SELECT", rows_affected: 1, rows: [{ c: 2 }], fields: [{ name: "c", type_oid: 23 }] },
      ]);
      assert.equal((await direct.query("SELECT count(*)::int AS c FROM leak")).rows[0].c, 2);
    });

    it("commits nothing when one statement fails, and says which", async () => {
      const res = await call("transaction", {
        statements: [{ sql: "INSERT INTO leak VALUES (300)" }, { sql: "INSERT INTO leak VALUES ('x')" }, { sql: "INSERT INTO leak VALUES (400)" }],
      });
      assert.equal(res.status, 400);
      assert.equal(res.body.error?.["statement_index"], 1);
      assert.equal(res.body.error?.["code"], "22P02");
      assert.equal((await direct.query("SELECT count(*)::int AS c FROM leak WHERE n IN (300, 400)")).rows[0].c, 0);
      await direct.query("DELETE FROM leak");
    });
  });

  describe("/transaction options", () => {
    it("begins with the isolation level, read only and deferrable it is given", async () => {
      const show = [{ sql: "SELECT current_setting('transaction_isolation') AS i, current_setting('transaction_read_only') AS r, current_setting('transaction_deferrable') AS d" }];
      const settings = async (extra: Record<string, unknown>) => {
        const res = await call("transaction", { statements: show, ...extra });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return (res.body["results"] as { rows: unknown[] }[])[0]?.rows[0];
      };
      assert.deepEqual(await settings({}), { i: "read committed", r: "off", d: "off" });
      assert.deepEqual(await settings({ isolation_level: "serializable", read_only: true, deferrable: true }), { i: "serializable", r: "on", d: "on" });
      assert.deepEqual(await settings({ isolation_level: "repeatable_read" }), { i: "repeatable read", r: "off", d: "off" });
      // The options last one transaction: the next request is back to the defaults.
      assert.deepEqual(await settings({}), { i: "read committed", r: "off", d: "off" });
    });

    it("enforces read_only: a write fails with 25006 and nothing commits", async () => {
      const res = await call("transaction", { statements: [{ sql: "INSERT INTO leak VALUES (7)" }], read_only: true });
      assert.equal(res.status, 400);
      assert.equal(res.body.error?.["code"], "25006");
      assert.equal((await direct.query("SELECT count(*)::int AS c FROM leak WHERE n = 7")).rows[0].c, 0);
    });

    it("400 for an unknown isolation level or a non-boolean flag", async () => {
      // (Fastify's schema coercion, on for the whole API, accepts "true"/"false"/1/0 for booleans.)
      for (const extra of [{ isolation_level: "snapshot" }, { isolation_level: "Serializable" }, { read_only: "yes" }, { deferrable: [] }]) {
        const res = await call("transaction", { statements: [{ sql: "SELECT 1" }], ...extra });
        assert.equal(res.status, 400, JSON.stringify(extra));
        assert.equal(res.body.error?.["code"], "invalid_request");
      }
    });
  });

  describe("tokens", () => {
    it("a token of database A gets exactly the answer a wrong token gets on database B", async () => {
      const good = await call("query", { sql: "SELECT 1 AS x" }, { id: b.id, token: b.token });
      assert.equal(good.status, 200);
      const foreign = await call("query", { sql: "SELECT 1" }, { id: b.id, token: a.token });
      const wrong = await call("query", { sql: "SELECT 1" }, { id: b.id, token: "f".repeat(64) });
      const garbage = await call("query", { sql: "SELECT 1" }, { id: b.id, token: "x" });
      const missing = await call("query", { sql: "SELECT 1" }, { id: b.id, token: null });
      for (const r of [foreign, wrong, garbage, missing]) {
        assert.equal(r.status, 401);
        assert.deepEqual(r.body, foreign.body);
      }
      const basic = await call("query", { sql: "SELECT 1" }, { id: b.id, token: null, headers: { authorization: `Basic ${b.token}` } });
      assert.deepEqual([basic.status, basic.body], [401, foreign.body]);
    });

    it("stores only a hash of the token", async () => {
      const row = await server.catalog.databases.find(a.id);
      assert.ok(row);
      assert.notEqual(row.token_hash, a.token);
      assert.ok(!row.token_hash.includes(a.token.slice(0, 16)));
    });

    it("answers 404 for an unknown database", async () => {
      const res = await call("query", { sql: "SELECT 1" }, { id: "db-0123456789ab" });
      assert.equal(res.status, 404);
      assert.equal(res.body.error?.["code"], "not_found");
    });

    it("routes by Host: db-<id>.<domain>[:port]", async () => {
      const port = new URL(server.url).port;
      const body = JSON.stringify({ sql: "SELECT current_database() AS d, current_user AS u" });
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(
          { host: "127.0.0.1", port, path: "/query", method: "POST", headers: { host: `${a.id}.localhost:${port}`, authorization: `Bearer ${a.token}`, "content-type": "application/json" } },
          (r) => {
            let data = "";
            r.on("data", (d: Buffer) => (data += d.toString()));
            r.on("end", () => resolve({ status: r.statusCode ?? 0, body: data }));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
      assert.equal(res.status, 200, res.body);
      assert.deepEqual((JSON.parse(res.body) as { rows: unknown[] }).rows, [{ d: "default", u: "clusterbase" }]);
    });
  });

  describe("no session state survives into another request", () => {
    const pid = async () => ((await call("query", { sql: "SELECT pg_backend_pid() AS p" })).body["rows"] as { p: number }[])[0]?.p;
    const one = async (sql: string) => ((await call("query", { sql })).body["rows"] as Record<string, unknown>[])[0];

    it("reuses one server connection (so the checks below can fail)", async () => {
      assert.equal(await pid(), await pid());
    });
    it("SET", async () => {
      const before = await one("SHOW search_path");
      await call("query", { sql: "SET search_path = pg_catalog; SET statement_timeout = '1h'; SET my.flag = 'on'" });
      assert.deepEqual(await one("SHOW search_path"), before);
      assert.deepEqual(await one("SHOW statement_timeout"), { statement_timeout: "1s" });
      // RESET ALL clears the value; Postgres keeps the placeholder variable itself, reading ''.
      assert.deepEqual(await one("SELECT current_setting('my.flag', true) AS f"), { f: "" });
    });
    it("temp tables", async () => {
      await call("query", { sql: "CREATE TEMP TABLE tmp_leak (x int)" });
      assert.deepEqual(await one("SELECT to_regclass('pg_temp.tmp_leak') AS t"), { t: null });
    });
    it("prepared statements", async () => {
      await call("query", { sql: "PREPARE leaky AS SELECT 1" });
      assert.deepEqual(await one("SELECT count(*)::int AS c FROM pg_prepared_statements"), { c: 0 });
    });
    it("advisory locks", async () => {
      await call("query", { sql: "SELECT pg_advisory_lock(4242)" });
      assert.deepEqual(await one("SELECT count(*)::int AS c FROM pg_locks WHERE locktype = 'advisory'"), { c: 0 });
    });
    it("open transactions", async () => {
      await call("query", { sql: "BEGIN; INSERT INTO leak VALUES (7)" });
      assert.deepEqual(await one("SELECT count(*)::int AS c FROM leak"), { c: 0 });
      assert.equal((await direct.query("SELECT count(*)::int AS c FROM leak")).rows[0].c, 0);
    });
    it("LISTEN", async () => {
      await call("query", { sql: "LISTEN leaky_channel" });
      assert.deepEqual(await one("SELECT count(*)::int AS c FROM pg_listening_channels()"), { c: 0 });
    });
  });

  describe("a client that goes away mid-statement", () => {
    const until = <T>(what: string, fn: () => Promise<T | undefined>) => poll(what, fn, { deadlineMs: 15_000 });
    const activePid = async (sql: string) =>
      (await direct.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE query = $1 AND state = 'active'", [sql])).rows[0]?.pid;

    it("gets its statement cancelled, its transaction rolled back and its pooled connection replaced", async () => {
      const sleep = "SELECT pg_sleep(60)";
      const controller = new AbortController();
      const request = fetch(`${server.url}/v1/databases/${a.id}/transaction`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${a.token}` },
        // No statement timeout in this transaction: only the cancel can stop the sleep before a minute is up.
        body: JSON.stringify({ statements: [{ sql: "SET LOCAL statement_timeout = 0" }, { sql: "INSERT INTO leak VALUES (4242)" }, { sql: sleep }] }),
        signal: controller.signal,
      });
      request.catch(() => undefined);
      const pid = await until("the sleep to run", () => activePid(sleep));
      controller.abort();
      await until("the sleep to stop", async () => ((await activePid(sleep)) === undefined ? true : undefined));
      await until("its backend to exit", async () => ((await direct.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [pid])).rowCount === 0 ? true : undefined));
      // The pool has one connection: this answer needs the slot back. The insert was rolled back.
      const res = await call("query", { sql: "SELECT count(*)::int AS n FROM leak WHERE n = 4242" });
      assert.equal(res.status, 200);
      assert.deepEqual(res.body["rows"], [{ n: 0 }]);
    });
  });

  describe("limits and bad input", () => {
    it("413 for a body over the limit", async () => {
      const res = await call("query", { sql: `SELECT '${"x".repeat(70 * 1024)}'` });
      assert.equal(res.status, 413);
      assert.equal(res.body.error?.["code"], "payload_too_large");
    });
    it("a clear error for a response over the limit, and the gateway keeps working", async () => {
      const res = await call("query", { sql: "SELECT repeat('x', 100000) FROM generate_series(1, 100)" });
      assert.equal(res.status, 400);
      assert.equal(res.body.error?.["reason"], "response_too_large");
      assert.match(String(res.body.error?.["message"]), /response limit/);
      assert.deepEqual((await call("query", { sql: "SELECT 1 AS ok" })).body["rows"], [{ ok: 1 }]);
    });
    it("cancels statements past the default statement timeout", async () => {
      const res = await call("query", { sql: "SELECT pg_sleep(5)" });
      assert.equal(res.status, 400);
      assert.equal(res.body.error?.["code"], "57014");
    });
    const malformed: [string, string][] = [
      ["not JSON", "{sql: nope"],
      ["sql missing", JSON.stringify({ params: [] })],
      ["sql empty", JSON.stringify({ sql: "" })],
      ["sql not a string", JSON.stringify({ sql: 42 })],
      ["params not an array", JSON.stringify({ sql: "SELECT $1", params: { a: 1 } })],
      ["unknown property", JSON.stringify({ sql: "SELECT 1", sqll: "x" })],
      ["NUL in SQL", JSON.stringify({ sql: "SELECT 1\u0000; DROP TABLE people" })],
      ["a JSON array", "[]"],
      ["JSON null", "null"],
    ];
    for (const [name, raw] of malformed) {
      it(`400 for a malformed body: ${name}`, async () => {
        const res = await call("query", undefined, { raw });
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(typeof res.body.error?.["message"], "string");
      });
    }
    it("400 for a malformed transaction", async () => {
      for (const body of [{ statements: [] }, { statements: [{ params: [] }] }, { statements: "SELECT 1" }]) {
        assert.equal((await call("transaction", body)).status, 400);
      }
    });
    it("503 with Retry-After while the database is not running", async () => {
      await server.driver.stop(b.id);
      try {
        const res = await call("query", { sql: "SELECT 1" }, { id: b.id, token: b.token });
        assert.equal(res.status, 503);
        assert.equal(res.headers.get("retry-after"), "1");
        assert.equal(res.body.error?.["code"], "not_ready");
      } finally {
        await server.driver.start(b.id);
      }
      assert.equal((await call("query", { sql: "SELECT 1 AS x" }, { id: b.id, token: b.token })).status, 200);
    });
  });

  it("survives thousands of random and malformed bodies with no 5xx", async () => {
    let seed = 1234567;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const randString = (n: number) => Array.from({ length: n }, () => String.fromCharCode(Math.floor(rand() * 0x2ff))).join("");
    const values = [null, true, false, 0, -1, 1e308, -1e-308, 2 ** 53, "", "x", "'; DROP TABLE people; --", "\u0000", "😀", [], [1, [2, [3]]], {}, { a: { b: [null] } }, [null, "a"], "9".repeat(400)];
    const sqls = ["SELECT $1", "SELECT $1::int", "SELECT $1::jsonb", "SELECT $2", "SELECT", "SELECT 1; SELECT 2", "BEGIN", "COMMIT", "ROLLBACK", "SELECT pg_sleep(0)", "SELECT * FROM people WHERE id = $1", "\\d", ";", " ", "SELECT '\\x00'::bytea"];
    const randomJson = (depth: number): unknown => {
      if (depth > 3) return pick(values);
      switch (Math.floor(rand() * 4)) {
        case 0: return Array.from({ length: Math.floor(rand() * 4) }, () => randomJson(depth + 1));
        case 1: return Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, () => [pick(["sql", "params", "statements", "x"]), randomJson(depth + 1)]));
        default: return pick(values);
      }
    };
    const bodies = (): { raw: string; type: string } => {
      const type = pick(["application/json", "application/json", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-16"]);
      switch (Math.floor(rand() * 6)) {
        case 0: return { raw: randString(Math.floor(rand() * 200)), type };
        case 1: return { raw: JSON.stringify(randomJson(0)), type };
        case 2: return { raw: JSON.stringify({ sql: pick(sqls), params: Array.from({ length: Math.floor(rand() * 3) }, () => pick(values)) }), type };
        case 3: return { raw: JSON.stringify({ statements: Array.from({ length: Math.floor(rand() * 3) }, () => ({ sql: pick(sqls), params: [pick(values)] })) }), type };
        case 4: return { raw: JSON.stringify({ sql: randString(Math.floor(rand() * 50)) }), type };
        default: return { raw: JSON.stringify({ sql: pick(sqls), params: pick(values) }).slice(0, Math.floor(rand() * 60)), type };
      }
    };
    const statuses = new Map<number, number>();
    for (let i = 0; i < 3000; i++) {
      const { raw, type } = bodies();
      const endpoint = pick(["query", "execute", "transaction"]);
      const res = await fetch(`${server.url}/v1/databases/${a.id}/${endpoint}`, {
        method: "POST",
        headers: { "content-type": type, authorization: `Bearer ${a.token}` },
        body: raw,
      });
      const text = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok(res.status < 500, `#${i} ${endpoint} ${type} ${JSON.stringify(raw)} → ${res.status} ${text}`);
      assert.doesNotThrow(() => JSON.parse(text), `#${i}: response is not JSON: ${text}`);
    }
    assert.ok((statuses.get(200) ?? 0) > 100, `some requests must succeed: ${JSON.stringify([...statuses])}`);
    assert.ok((statuses.get(400) ?? 0) > 100);
    assert.deepEqual((await call("query", { sql: "SELECT count(*)::int AS c FROM people" })).body["rows"], [{ c: 3 }]);
  });
});
