import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import { SessionStore } from "../src/console/sessions.js";
import { serveConsole } from "../src/console/static.js";
import type { RunningServer } from "../src/index.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

describe("console sessions: expiry", () => {
  it("a session ends at its expiry and is swept", () => {
    let now = 1_000_000;
    const store = new SessionStore({ ttlMs: 60_000, now: () => now });
    const s = store.create();
    assert.equal(store.get(s.id)?.csrfToken, s.csrfToken);
    now += 59_999;
    assert.ok(store.get(s.id));
    now += 1;
    assert.equal(store.get(s.id), undefined);
    assert.equal(store.get(undefined), undefined);
    assert.equal(store.get("made-up"), undefined);
  });
});

describe("console: sign-in, CSRF, static files and the admin SQL endpoint on a real ccpd", () => {
  let t: TestServer;
  let server: RunningServer;
  let key: string;

  before(async () => {
    t = await startTestServer("console-api");
    server = t.server;
    key = t.adminKey;
    await server.databases.create("console-api");
  });
  after(async () => {
    await t?.dispose();
  });

  const call = async (method: string, url: string, init: { headers?: Record<string, string>; body?: unknown } = {}) => {
    const headers: Record<string, string> = { ...init.headers };
    if (init.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${server.url}${url}`, { method, headers, ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }) });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON (HTML)
    }
    return { status: res.status, headers: res.headers, text, json, error: (json["error"] ?? {}) as Record<string, unknown> };
  };
  const signIn = async () => {
    const res = await call("POST", "/v1/session", { body: { key } });
    assert.equal(res.status, 201);
    const cookie = /^ccp_session=([^;]+)/.exec(res.headers.get("set-cookie") ?? "")?.[1];
    assert.ok(cookie);
    return { cookie: `ccp_session=${cookie}`, csrf: res.json["csrf_token"] as string, setCookie: res.headers.get("set-cookie") ?? "" };
  };

  it("refuses a wrong key with 401 and no cookie", async () => {
    const res = await call("POST", "/v1/session", { body: { key: "nope" } });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("set-cookie"), null);
    assert.match(String(res.error["message"]), /not an admin API key/);
    assert.equal((await call("POST", "/v1/session", { body: {} })).status, 400);
  });

  it("sets an HttpOnly, SameSite=Strict cookie holding only an opaque id, with an expiry", async () => {
    const s = await signIn();
    assert.match(s.setCookie, /HttpOnly/);
    assert.match(s.setCookie, /SameSite=Strict/);
    assert.match(s.setCookie, /Max-Age=\d+/);
    assert.match(s.setCookie, /Path=\//);
    assert.ok(!s.setCookie.includes(key), "the admin key never goes into the cookie");
    const again = await call("GET", "/v1/session", { headers: { cookie: s.cookie } });
    assert.equal(again.json["csrf_token"], s.csrf);
  });

  it("reads with the cookie alone, but a state-changing request needs the matching X-CSRF-Token", async () => {
    const s = await signIn();
    assert.equal((await call("GET", "/v1/databases", { headers: { cookie: s.cookie } })).status, 200);
    const noToken = await call("POST", "/v1/databases", { headers: { cookie: s.cookie }, body: { name: "csrf-victim" } });
    assert.equal(noToken.status, 403);
    assert.equal(noToken.error["code"], "forbidden");
    assert.match(String(noToken.error["hint"]), /x-csrf-token/i);
    const other = await signIn();
    assert.equal((await call("DELETE", "/v1/databases/console-api", { headers: { cookie: s.cookie, "x-csrf-token": other.csrf } })).status, 403, "another session's token");
    assert.equal((await call("GET", "/v1/databases/console-api", { headers: {} })).status, 401);
    const ok = await call("POST", "/v1/databases/console-api/sql", { headers: { cookie: s.cookie, "x-csrf-token": s.csrf }, body: { sql: "SELECT 1 AS one" } });
    assert.equal(ok.status, 200);
    // Bearer requests (CLI, scripts) need no CSRF token, with or without a cookie beside them.
    assert.equal((await call("POST", "/v1/databases/console-api/sql", { headers: { authorization: `Bearer ${key}`, cookie: s.cookie }, body: { sql: "SELECT 1" } })).status, 200);
    assert.equal((await call("POST", "/v1/databases/console-api/sql", { headers: { authorization: "Bearer wrong", cookie: s.cookie }, body: { sql: "SELECT 1" } })).status, 401, "a wrong Bearer key is not rescued by the cookie");
  });

  it("the cookie reaches observability's admin routes too (metrics, logs, insights), with the CSRF rule on its POSTs", async () => {
    const s = await signIn();
    const metrics = await call("GET", "/metrics", { headers: { cookie: s.cookie } });
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /pg_up/);
    assert.equal((await call("GET", "/v1/databases/console-api/logs?since=1h", { headers: { cookie: s.cookie } })).status, 200);
    assert.equal((await call("GET", "/v1/databases/console-api/insights", { headers: { cookie: s.cookie } })).status, 200);
    assert.equal((await call("POST", "/v1/databases/console-api/insights/reset", { headers: { cookie: s.cookie } })).status, 403);
    assert.equal((await call("POST", "/v1/databases/console-api/insights/reset", { headers: { cookie: s.cookie, "x-csrf-token": s.csrf } })).status, 200);
    assert.equal((await call("GET", "/metrics", { headers: { cookie: "ccp_session=stale" } })).status, 401);
    assert.equal((await call("GET", "/metrics")).status, 401);
  });

  it("signs out: the session is gone server-side, so the old cookie is refused", async () => {
    const s = await signIn();
    assert.equal((await call("DELETE", "/v1/session", { headers: { cookie: s.cookie } })).status, 403, "sign-out needs the CSRF token too");
    const out = await call("DELETE", "/v1/session", { headers: { cookie: s.cookie, "x-csrf-token": s.csrf } });
    assert.equal(out.status, 200);
    assert.match(out.headers.get("set-cookie") ?? "", /ccp_session=;/);
    const after = await call("GET", "/v1/databases", { headers: { cookie: s.cookie } });
    assert.equal(after.status, 401);
    assert.match(String(after.error["hint"]), /Sign in again/);
    assert.equal((await call("GET", "/v1/session", { headers: { cookie: s.cookie } })).status, 401);
  });

  it("runs SQL as the owner: rows as arrays with type OIDs, several statements, params, raw text, and Postgres errors with their position", async () => {
    const auth = { authorization: `Bearer ${key}` };
    const r = await call("POST", "/v1/databases/console-api/sql", { headers: auth, body: { sql: "CREATE TABLE t (id int PRIMARY KEY, at timestamptz); INSERT INTO t VALUES (1, '2026-01-02 03:04:05+00') RETURNING id, at, current_user AS who" } });
    assert.equal(r.status, 200, r.text);
    const results = r.json["results"] as { command: string; row_count: number; fields: { name: string; type_oid: number }[]; rows: unknown[][] }[];
    assert.equal(results.length, 2);
    assert.equal(results[0]?.command, "CREATE");
    assert.deepEqual(results[1]?.fields, [
      { name: "id", type_oid: 23 },
      { name: "at", type_oid: 1184 },
      { name: "who", type_oid: 19 },
    ]);
    assert.deepEqual(results[1]?.rows, [[1, "2026-01-02T03:04:05Z", "clusterbase"]]);
    assert.equal(typeof r.json["duration_ms"], "number");
    const raw = await call("POST", "/v1/databases/console-api/sql", { headers: auth, body: { sql: "SELECT id, at FROM t WHERE id = $1", params: ["1"], raw_text: true } });
    assert.deepEqual((raw.json["results"] as { rows: unknown[][] }[])[0]?.rows, [["1", "2026-01-02 03:04:05+00"]]);
    const bad = await call("POST", "/v1/databases/console-api/sql", { headers: auth, body: { sql: "SELECT 1 FROMM t" } });
    assert.equal(bad.status, 400);
    assert.equal(bad.error["code"], "42601");
    assert.equal(bad.error["position"], 16); // FROMM reads as a column alias: the error is at "t"
    assert.equal((await call("POST", "/v1/databases/no-such-db/sql", { headers: auth, body: { sql: "SELECT 1" } })).status, 404);
    assert.equal((await call("POST", "/v1/databases/console-api/sql", { headers: auth, body: { sql: "" } })).status, 400);
    assert.equal((await call("POST", "/v1/databases/console-api/sql", { headers: auth, body: { sql: "SELECT 1", extra: true } })).status, 400);
  });

  it("serves the console at / with a strict CSP, console paths fall back to index.html, the API keeps its JSON 404", async () => {
    const index = await call("GET", "/", { headers: { accept: "text/html" } });
    assert.equal(index.status, 200);
    assert.match(index.text, /<div id="app">/);
    assert.match(index.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.match(index.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
    const deep = await call("GET", "/databases/console-api/sql", { headers: { accept: "text/html,application/xhtml+xml" } });
    assert.equal(deep.status, 200);
    assert.equal(deep.text, index.text);
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(index.text)?.[1];
    assert.ok(asset);
    const js = await fetch(`${server.url}${asset}`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("cache-control") ?? "", /immutable/);
    assert.match(await js.text(), /\S/); // read it all: an unread body keeps the connection, and ccpd's close, waiting
    const api404 = await call("GET", "/v1/nothing-here", { headers: { accept: "text/html" } });
    assert.equal(api404.status, 404);
    assert.equal(api404.error["code"], "not_found");
    assert.equal((await call("GET", "/databases", { headers: { accept: "application/json" } })).status, 404, "non-browser clients get JSON");
  });

  it("answers bad sign-ins, cookies, CSRF headers, SQL bodies and paths with a 4xx, never a 5xx, and serves no file outside the console", async () => {
    const s = await signIn();
    const cases: [string, string, { headers?: Record<string, string>; body?: unknown }, number[]][] = [
      ["POST", "/v1/session", { body: { key: 123 } }, [400]],
      ["POST", "/v1/session", { body: { key: "" } }, [400]],
      ["POST", "/v1/session", { body: { key: "k".repeat(100_000) } }, [401]],
      ["POST", "/v1/session", { body: [] }, [400]],
      ["GET", "/v1/databases", { headers: { cookie: "ccp_session=%00" } }, [401]],
      ["GET", "/v1/databases", { headers: { cookie: `ccp_session=${"x".repeat(6000)}` } }, [401]],
      ["GET", "/v1/databases", { headers: { cookie: "ccp_session" } }, [401]],
      ["GET", "/v1/databases", { headers: { cookie: `${s.cookie}; ccp_session=other` } }, [200, 401]],
      ["POST", "/v1/databases/console-api/sql", { headers: { cookie: s.cookie, "x-csrf-token": "t".repeat(10_000) }, body: { sql: "SELECT 1" } }, [403]],
      ["POST", "/v1/databases/console-api/sql", { headers: { cookie: s.cookie, "x-csrf-token": s.csrf }, body: { sql: "SELECT 1", raw_text: "yes" } }, [400]],
      ["POST", "/v1/databases/console-api/sql", { headers: { cookie: s.cookie, "x-csrf-token": s.csrf }, body: { sql: "SELECT $1", params: [[[[[[[[[[1]]]]]]]]]] } }, [200, 400]],
      ["POST", "/v1/databases/console-api/sql", { headers: { cookie: s.cookie, "x-csrf-token": s.csrf }, body: { sql: "SELECT '\u0000'" } }, [400]],
      ["POST", "/v1/databases/console-api/sql", { headers: { cookie: s.cookie, "x-csrf-token": s.csrf }, body: { sql: "SELECT 1", database: "nope" } }, [400, 404, 503]],
      ["DELETE", "/v1/session", { headers: { cookie: "ccp_session=unknown" } }, [200]],
      ["GET", "/%00", { headers: { accept: "text/html" } }, [200, 400, 404]],
      ["GET", "/..%2f..%2f..%2fetc%2fpasswd", { headers: { accept: "text/html" } }, [200, 400, 403, 404]],
      ["GET", "/assets/..%2f..%2f..%2fpackage.json", {}, [400, 403, 404]],
    ];
    for (const [method, url, init, allowed] of cases) {
      const res = await call(method, url, init);
      assert.ok(allowed.includes(res.status), `${method} ${url} ${JSON.stringify(init).slice(0, 120)} answered ${res.status}: ${res.text.slice(0, 200)}`);
      assert.ok(!res.text.includes("root:x:0:0") && !res.text.includes('"name": "@ccp/console"'), `${url} served a file outside the console`);
    }
  });

  it("documents the new endpoints in the OpenAPI document", async () => {
    const doc = (await call("GET", "/v1/openapi.json")).json as { paths: Record<string, Record<string, unknown>> };
    assert.ok(doc.paths["/v1/session"]?.["post"] && doc.paths["/v1/session"]["delete"] && doc.paths["/v1/session"]["get"]);
    assert.ok(doc.paths["/v1/databases/{ref}/sql"]?.["post"]);
    assert.equal(doc.paths["/index.html"], undefined, "static files stay out of the API description");
  });
});

describe("console: ccpd without a built console", () => {
  it("answers / with how to build it, not a 5xx", async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), "ccp-console-none-"));
    mkdirSync(path.join(root, "empty"));
    writeFileSync(path.join(root, "empty", "README"), "no index.html here");
    const app = Fastify();
    const fallback = await serveConsole(app, path.join(root, "empty"));
    const res = await app.inject({ method: "GET", url: "/" });
    assert.equal(res.statusCode, 503);
    assert.match(res.body, /npm run build/);
    assert.equal(fallback({ method: "GET", url: "/databases", headers: { accept: "text/html" } } as never, {} as never), false);
    await app.close();
    rmSync(root, { recursive: true, force: true });
  });
});
