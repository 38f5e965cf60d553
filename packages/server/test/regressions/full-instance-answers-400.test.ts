import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { CcpError, resolveServerConfig } from "../../src/index.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * Issue 13, item 5: with no free connection slot, HTTP clients got 400 and
 * SQLSTATE 53300's text, as if their request were wrong. It is the server
 * being busy: 503 with Retry-After. And the slots add up by design: the
 * gateway's pool for an instance (all its databases together) and the wire
 * limit never exceed what the instance accepts.
 */
describe("regression: a full instance answers 400", () => {
  let t: TestServer;
  let db: { id: string; token: string; url: string };
  const tenants: pg.Client[] = [];

  before(async () => {
    // One gateway slot per instance: a second database inside it must share that slot, not open its own.
    t = await startTestServer("full", {}, (c) => ({ ...c, gateway: { ...c.gateway, poolSize: 1 } }));
    const created = await t.server.databases.create("full-db");
    db = { id: created.database.id, token: created.token, url: created.database_url };
  });
  after(async () => {
    for (const c of tenants) await c.end().catch(() => undefined);
    await t.dispose();
  });

  const query = async (sql: string, database?: string) => {
    const res = await t.http(`/v1/databases/${db.id}/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${db.token}`, "content-type": "application/json" },
      body: JSON.stringify({ sql, ...(database ? { database } : {}) }),
    });
    return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as { rows?: unknown[]; error?: { code: string; message: string } } };
  };

  it("answers 503 with Retry-After when the database has no free connection slot", async () => {
    // The tenant caps its own database at one connection and holds it over the wire.
    const wire = new pg.Client({ connectionString: db.url, ssl: false });
    tenants.push(wire);
    await wire.connect();
    await wire.query(`ALTER DATABASE "default" CONNECTION LIMIT 1`);
    const r = await query("select 1");
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.retryAfter, "1");
    assert.equal(r.body.error?.code, "not_ready");
    assert.match(r.body.error?.message ?? "", /no free connection slot/);
    await wire.query(`ALTER DATABASE "default" CONNECTION LIMIT -1`);
    await wire.end();
    assert.equal((await query("select 1 as one")).status, 200);
  });

  it("shares the instance's gateway slots between its databases", async () => {
    const created = await query("CREATE DATABASE app");
    assert.equal(created.status, 200, JSON.stringify(created.body));
    for (let i = 0; i < 4; i++) {
      const inApp = await query("select current_database() as d", "app");
      assert.equal(inApp.status, 200, JSON.stringify(inApp.body));
      const inDefault = await query("select current_database() as d");
      assert.equal(inDefault.status, 200, JSON.stringify(inDefault.body));
    }
    // Both at once: one slot, so they take turns; never two gateway backends.
    const [x, y] = await Promise.all([query("select pg_sleep(0.2), 1 as n", "app"), query("select pg_sleep(0.2), 2 as n")]);
    assert.equal(x.status, 200, JSON.stringify(x.body));
    assert.equal(y.status, 200, JSON.stringify(y.body));
    const seen = await query("select count(*)::int as n from pg_stat_activity where application_name = 'ccp-gateway'");
    assert.deepEqual(seen.body.rows, [{ n: 1 }]);
  });

  it("refuses a wire limit that, with the gateway's pool, exceeds what an instance accepts", () => {
    assert.throws(
      () => resolveServerConfig({ wireMaxConnections: 80 }),
      (err: unknown) => err instanceof CcpError && err.code === "invalid_request" && /at most 70/.test(err.hint ?? ""),
    );
    assert.equal(resolveServerConfig({ wireMaxConnections: 70 }).wireMaxConnections, 70);
  });
});
