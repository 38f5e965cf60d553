import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestServer, type TestServer } from "../support/test-server.js";

let t: TestServer;

before(async () => {
  t = await startTestServer("nul-ref");
});
after(() => t.dispose());

/**
 * Found by the security fuzz (security-fuzz.test.ts): a database reference with
 * a NUL (`/v1/databases/%00`) reached the catalog query, which Postgres refuses
 * (22021, text cannot hold NUL), and every admin route and the gateway answered 500.
 */
describe("regression: a NUL in a database reference answers 500", () => {
  it("is an unknown database (404) on the admin API and the gateway", async () => {
    const admin = { authorization: `Bearer ${t.adminKey}` };
    const cases: [string, string][] = [
      ["GET", "/v1/databases/%00"],
      ["GET", "/v1/databases/a%00b/status"],
      ["DELETE", "/v1/databases/%00"],
      ["POST", "/v1/databases/%00/token"],
      ["GET", "/v1/databases/%00/backups"],
    ];
    for (const [method, pathname] of cases) {
      const res = await t.http(pathname, { method, headers: admin });
      assert.equal(res.status, 404, `${method} ${pathname}: ${await res.text()}`);
    }
    const sql = await t.http("/v1/databases/db-%00/query", { method: "POST", headers: { authorization: "Bearer x", "content-type": "application/json" }, body: '{"sql":"select 1"}' });
    assert.equal(sql.status, 404, await sql.text());
  });
});
