import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestServer, type TestServer } from "../support/test-server.js";

let t: TestServer;
let db: { id: string; token: string };

before(async () => {
  t = await startTestServer("bodies");
  const created = await t.server.databases.create("bodies-db");
  db = { id: created.database.id, token: created.token };
});
after(() => t.dispose());

async function post(pathname: string, body: string): Promise<{ status: number; json: { error?: { code: string; message: string }; message?: string; code?: string } }> {
  const res = await t.http(pathname, { method: "POST", headers: { authorization: `Bearer ${db.token}`, "content-type": "application/json" }, body });
  return { status: res.status, json: (await res.json()) as never };
}

const nested = (depth: number) => `${"[".repeat(depth)}1${"]".repeat(depth)}`;

/** Issue 13, item 3: `params` nested 10,000 levels deep made /query and /sql answer 500 (stack overflow in parameter encoding). */
describe("regression: a request body with deeply nested params answers 500", () => {
  it("answers 400 naming the nesting depth, on /query, /execute, /transaction and Neon's /sql", async () => {
    const deep = nested(10_000);
    const cases: [string, string][] = [
      [`/v1/databases/${db.id}/query`, `{"sql":"select $1::text","params":[${deep}]}`],
      [`/v1/databases/${db.id}/execute`, `{"sql":"select $1::text","params":[${deep}]}`],
      [`/v1/databases/${db.id}/transaction`, `{"statements":[{"sql":"select $1::text","params":[${deep}]}]}`],
      [`/v1/databases/${db.id}/query`, `{"sql":"select $1::text","params":[${"{\"a\":".repeat(5_000)}1${"}".repeat(5_000)}]}`],
    ];
    for (const [pathname, body] of cases) {
      const r = await post(pathname, body);
      assert.equal(r.status, 400, `${pathname}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error?.code, "invalid_request");
      assert.match(r.json.error?.message ?? "", /nested more than 64 levels/);
    }
    const neon = await t.http("/sql", {
      method: "POST",
      headers: { "neon-connection-string": `postgresql://clusterbase:${db.token}@${db.id}.localhost/default` },
      body: `{"query":"select $1::text","params":[${deep}]}`,
    });
    const neonBody = (await neon.json()) as { message: string };
    assert.equal(neon.status, 400, JSON.stringify(neonBody));
    assert.match(neonBody.message, /nested more than 64 levels/);
  });

  it("still runs params nested within the bound", async () => {
    const r = await post(`/v1/databases/${db.id}/query`, `{"sql":"select $1::int[] as a","params":[[[1,2],[3,4]]]}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const ok = await post(`/v1/databases/${db.id}/query`, `{"sql":"select $1::jsonb->>'k' as k","params":[${"{\"k\":".repeat(20)}1${"}".repeat(20)}]}`);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
  });
});

/** Issue 13, item 4: `{"sql":["select 1"]}` ran (the array coerced to a string); Neon's `{"query": null}` ran as an empty query. */
describe("regression: loose types on SQL bodies are coerced and run", () => {
  it("answers 400 naming the field for a wrong type, never running it", async () => {
    for (const [pathname, body, field] of [
      [`/v1/databases/${db.id}/query`, `{"sql":["select 1"]}`, "sql"],
      [`/v1/databases/${db.id}/execute`, `{"sql":1}`, "sql"],
      [`/v1/databases/${db.id}/query`, `{"sql":null}`, "sql"],
      [`/v1/databases/${db.id}/query`, `{"sql":"select 1","params":"x"}`, "params"],
      [`/v1/databases/${db.id}/transaction`, `{"statements":[{"sql":["select 1"]}]}`, "sql"],
      [`/v1/databases/${db.id}/transaction`, `{"statements":[{"sql":"select 1"}],"read_only":"true"}`, "read_only"],
    ] as const) {
      const r = await post(pathname, body);
      assert.equal(r.status, 400, `${body}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error?.code, "invalid_request");
      assert.match(r.json.error?.message ?? "", new RegExp(field), body);
    }
    for (const body of [`{"query":null}`, `{"query":["select 1"]}`, `{"queries":[{"query":null}]}`]) {
      const neon = await t.http("/sql", {
        method: "POST",
        headers: { "neon-connection-string": `postgresql://clusterbase:${db.token}@${db.id}.localhost/default` },
        body,
      });
      const neonBody = (await neon.json()) as { message: string };
      assert.equal(neon.status, 400, `${body}: ${JSON.stringify(neonBody)}`);
      assert.match(neonBody.message, /query/, body);
    }
  });

  it("keeps coercing query strings (?show_secrets=true)", async () => {
    const res = await t.http(`/v1/databases/${db.id}?show_secrets=true`, { headers: { authorization: `Bearer ${t.adminKey}` } });
    assert.equal(res.status, 200);
    assert.ok(((await res.json()) as { database_url?: string }).database_url);
  });
});
