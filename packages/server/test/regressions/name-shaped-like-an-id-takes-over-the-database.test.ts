import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { catalogSql } from "../support/catalog-sql.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * Issue 13, item 1 (high): `POST /v1/databases {"name":"db-<another's id>"}` was
 * accepted, and every lookup (`WHERE id = $1 OR name = $1 LIMIT 1`, no order)
 * could then return the impostor: GET, status, token rotation, destroy by id,
 * and the gateway's path routing answered for the wrong database.
 */
describe("regression: a database named like another database's id takes it over", () => {
  let t: TestServer;
  let real: { id: string; token: string };
  const admin = () => ({ authorization: `Bearer ${t.adminKey}`, "content-type": "application/json" });

  before(async () => {
    t = await startTestServer("id-name");
    const created = await t.server.databases.create("real-db");
    real = { id: created.database.id, token: created.token };
  });
  after(() => t.dispose());

  it("refuses a name with the shape of a database id, in any case, with 400 invalid_name", async () => {
    for (const name of [real.id, "db-000000000000", "db-ABCDEF012345", real.id.toUpperCase()]) {
      const res = await t.http("/v1/databases", { method: "POST", headers: admin(), body: JSON.stringify({ name }) });
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 400, `${name}: ${JSON.stringify(body)}`);
      assert.equal(body.error.code, "invalid_name");
    }
    const list = (await (await t.http("/v1/databases", { headers: admin() })).json()) as { databases: { name: string }[] };
    assert.deepEqual(list.databases.map((d) => d.name), ["real-db"]);
  });

  it("resolves by id first even when a row (from before the rule) carries that id as its name", async () => {
    // Such a row can only come from a catalog written before names of that shape were refused.
    await catalogSql(t.server.catalog, async (q) => {
      await q.query(
        `INSERT INTO ccp.databases (id, name, status, runtime, pg_version, owner_role, database_name, token_hash)
         SELECT 'db-0000000000aa', $1, 'ready', runtime, pg_version, owner_role, database_name, repeat('0', 64) FROM ccp.databases WHERE id = $1`,
        [real.id],
      );
    });
    // Any update moves the real row behind the impostor in the heap: the unordered lookup then found the impostor first.
    const rotated = await t.http(`/v1/databases/${real.id}/token`, { method: "POST", headers: { authorization: `Bearer ${t.adminKey}` } });
    assert.equal(rotated.status, 200, await rotated.clone().text());
    const token = ((await rotated.json()) as { token: string }).token;

    for (let i = 0; i < 5; i++) {
      const got = (await (await t.http(`/v1/databases/${real.id}`, { headers: admin() })).json()) as { database: { id: string; name: string } };
      assert.equal(got.database.id, real.id);
      assert.equal(got.database.name, "real-db");
    }
    const status = await t.http(`/v1/databases/${real.id}/status`, { headers: admin() });
    const statusText = await status.text();
    assert.equal(status.status, 200, statusText);
    assert.ok(!statusText.includes("db-0000000000aa"), statusText);

    const q = await t.http(`/v1/databases/${real.id}/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ sql: "select 1 as one" }),
    });
    assert.equal(q.status, 200, await q.clone().text());
    assert.deepEqual(((await q.json()) as { rows: unknown[] }).rows, [{ one: 1 }]);

    // Destroy by id removes the real database, not the impostor.
    const destroyed = await t.http(`/v1/databases/${real.id}`, { method: "DELETE", headers: { authorization: `Bearer ${t.adminKey}` } });
    assert.equal(destroyed.status, 200, await destroyed.clone().text());
    const left = await t.server.catalog.databases.list();
    assert.deepEqual(left.map((r) => r.id), ["db-0000000000aa"]);
  });
});
