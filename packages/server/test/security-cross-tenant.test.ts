import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { startSecurityServer, type SecurityServer, type Tenant } from "./support/security.js";
import { connectPg, tlsBySni } from "./wire-clients.js";

/**
 * Cross-tenant matrix: three databases; every way of addressing a database over
 * HTTP (path, Host, Neon's /sql) and over the wire endpoint (user name, SNI),
 * tried against each database with every OTHER database's credential. Each such
 * answer must be byte-identical (HTTP status and body; every field of the wire
 * error) to the answer for a wrong credential sent the same way: another
 * tenant's credential is worth exactly as much as garbage. Where the right
 * credential gets through the same way, it must reach the database addressed
 * (each database holds a table naming itself), never another.
 */

interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

interface HttpWay {
  readonly name: string;
  /** The request addressing `target`, carrying `credential` (a token), with `other` the credential's own database. */
  build(target: Tenant, credential: string, other: Tenant): { path: string; host: string; headers?: Record<string, string>; body: unknown };
}

const QUERY = { sql: "SELECT name FROM whoami" };
const TX = { statements: [QUERY] };
const NEON = { query: "SELECT name FROM whoami", params: [] };

describe("security: one tenant's credentials never open another tenant's database", () => {
  let sec: SecurityServer;
  let port = 0;
  const cells = { http: 0, wire: 0, reached: 0 };

  before(async () => {
    sec = await startSecurityServer("cross", ["cross-a", "cross-b", "cross-c"]);
    port = Number(new URL(sec.server.url).port);
    for (const t of sec.tenants) {
      const c = await connectPg(t.url);
      await c.query("CREATE TABLE whoami (name text); INSERT INTO whoami VALUES ($1)".replace("$1", `'${t.name}'`));
      await c.end();
    }
  });
  after(async () => {
    await sec?.close();
    console.log(`cross-tenant matrix: ${cells.http} HTTP cells and ${cells.wire} wire cells (${cells.http + cells.wire} in all), each identical to a wrong credential's answer; the right credential reached its own database ${cells.reached} times`);
  });

  const host = (id: string) => `${id}.localhost`;
  const HTTP_WAYS: HttpWay[] = [
    ...(["query", "execute", "transaction"] as const).flatMap((ep): HttpWay[] => [
      { name: `path /v1/databases/<id>/${ep}`, build: (t, tok) => ({ path: `/v1/databases/${t.id}/${ep}`, host: `127.0.0.1:${port}`, headers: bearer(tok), body: ep === "transaction" ? TX : QUERY }) },
      { name: `Host db-<id>.localhost /${ep}`, build: (t, tok) => ({ path: `/${ep}`, host: host(t.id), headers: bearer(tok), body: ep === "transaction" ? TX : QUERY }) },
    ]),
    { name: "path with the id in upper case", build: (t, tok) => ({ path: `/v1/databases/${t.id.toUpperCase()}/query`, host: `127.0.0.1:${port}`, headers: bearer(tok), body: QUERY }) },
    { name: "Host in upper case", build: (t, tok) => ({ path: "/query", host: host(t.id).toUpperCase(), headers: bearer(tok), body: QUERY }) },
    { name: "Host with a trailing dot", build: (t, tok) => ({ path: "/query", host: `${host(t.id)}.`, headers: bearer(tok), body: QUERY }) },
    { name: "Host with ccpd's port", build: (t, tok) => ({ path: "/query", host: `${host(t.id)}:${port}`, headers: bearer(tok), body: QUERY }) },
    { name: "Host with another port", build: (t, tok) => ({ path: "/query", host: `${host(t.id)}:1`, headers: bearer(tok), body: QUERY }) },
    { name: "Host naming the credential's database, path naming the target", build: (t, tok, o) => ({ path: `/v1/databases/${t.id}/query`, host: host(o.id), headers: bearer(tok), body: QUERY }) },
    { name: "Host naming the target, path naming the credential's database's name", build: (t, tok, o) => ({ path: `/v1/databases/${o.name}/query`, host: host(t.id), headers: bearer(tok), body: QUERY }) },
    { name: "path naming the target by name", build: (t, tok) => ({ path: `/v1/databases/${t.name}/query`, host: `127.0.0.1:${port}`, headers: bearer(tok), body: QUERY }) },
    { name: "Neon /sql, token as the connection string's password", build: (t, tok) => ({ path: "/sql", host: `127.0.0.1:${port}`, headers: neon(`postgresql://clusterbase:${tok}@${host(t.id)}/default`), body: NEON }) },
    { name: "Neon /sql, token as Bearer", build: (t, tok) => ({ path: "/sql", host: `127.0.0.1:${port}`, headers: { ...neon(`postgresql://clusterbase@${host(t.id)}/default`), ...bearer(tok) }, body: NEON }) },
    { name: "Neon /sql, host in upper case", build: (t, tok) => ({ path: "/sql", host: `127.0.0.1:${port}`, headers: neon(`postgresql://clusterbase:${tok}@${host(t.id).toUpperCase()}/default`), body: NEON }) },
    { name: "Neon /sql, host with a port", build: (t, tok) => ({ path: "/sql", host: `127.0.0.1:${port}`, headers: neon(`postgresql://clusterbase:${tok}@${host(t.id)}:5432/default`), body: NEON }) },
    { name: "Neon /sql, host with a trailing dot", build: (t, tok) => ({ path: "/sql", host: `127.0.0.1:${port}`, headers: neon(`postgres://clusterbase:${tok}@${host(t.id)}./default`), body: NEON }) },
    { name: "Neon /sql, Host header naming the credential's database", build: (t, tok, o) => ({ path: "/sql", host: host(o.id), headers: neon(`postgresql://clusterbase:${tok}@${host(t.id)}/default`), body: NEON }) },
    { name: "Neon /sql, batch", build: (t, tok) => ({ path: "/sql", host: `127.0.0.1:${port}`, headers: neon(`postgresql://clusterbase:${tok}@${host(t.id)}/default`), body: { queries: [NEON] } }) },
  ];

  function send(req: { path: string; host: string; headers?: Record<string, string>; body: unknown }): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const payload = JSON.stringify(req.body);
      const r = http.request(
        { host: "127.0.0.1", port, method: "POST", path: req.path, headers: { host: req.host, "content-type": "application/json", "content-length": Buffer.byteLength(payload), ...req.headers } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (d: Buffer) => chunks.push(d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        },
      );
      r.on("error", reject);
      r.end(payload);
    });
  }

  const wrongToken = () => randomBytes(32).toString("hex");

  for (const way of HTTP_WAYS) {
    it(`HTTP, ${way.name}`, async () => {
      for (const target of sec.tenants) {
        for (const other of sec.tenants.filter((t) => t !== target)) {
          const theirs = await send(way.build(target, other.token, other));
          const wrong = await send(way.build(target, wrongToken(), other));
          assert.notEqual(theirs.status, 200, `${other.name}'s token got into ${target.name}: ${theirs.body}`);
          assert.ok(theirs.status < 500, `${theirs.status} ${theirs.body}`);
          assert.deepEqual(theirs, wrong, `${other.name}'s token on ${target.name} must get a wrong token's answer`);
          cells.http++;
        }
        const own = await send(way.build(target, target.token, target));
        if (own.status === 200) {
          assert.match(own.body, new RegExp(`"${target.name}"`), `the right token reached another database: ${own.body}`);
          cells.reached++;
        }
      }
    });
  }

  it("HTTP, a database token is not an admin key (admin API)", async () => {
    for (const target of sec.tenants) {
      for (const other of sec.tenants) {
        const get = (tok: string) => getAdmin(`/v1/databases/${target.id}`, tok);
        assert.deepEqual(await get(other.token), await get(wrongToken()));
        const del = (tok: string) => getAdmin(`/v1/databases/${target.id}/token`, tok, "POST");
        const theirs = await del(other.token);
        assert.equal(theirs.status, 401);
        assert.deepEqual(theirs, await del(wrongToken()));
        cells.http += 2;
      }
    }
  });

  it("HTTP, no database can be named like another database's id (the id-shaped-name takeover, issue 13)", async () => {
    for (const target of sec.tenants) {
      for (const name of [target.id, target.id.toUpperCase(), "db-0123456789ab"]) {
        const res = await getAdmin("/v1/databases", sec.adminKey, "POST", { name });
        assert.equal(res.status, 400, `name ${name}: ${res.body}`);
        assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, "invalid_name", res.body);
      }
      // The real database still answers by id, with its own token.
      const own = await send({ path: `/v1/databases/${target.id}/query`, host: `127.0.0.1:${port}`, headers: bearer(target.token), body: QUERY });
      assert.equal(own.status, 200, own.body);
      assert.match(own.body, new RegExp(`"${target.name}"`));
    }
  });

  function getAdmin(path: string, tok: string, method = "GET", body?: unknown): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const headers = { ...bearer(tok), ...(payload === undefined ? {} : { "content-type": "application/json", "content-length": String(Buffer.byteLength(payload)) }) };
      const r = http.request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      });
      r.on("error", reject);
      r.end(payload);
    });
  }

  // --- the wire endpoint ---

  interface WireWay {
    readonly name: string;
    config(target: Tenant, password: string, other: Tenant): pg.ClientConfig;
  }
  const plain = (user: string, password: string): pg.ClientConfig => ({ host: "127.0.0.1", port: sec.server.wirePort, user, password, database: "default" });
  const WIRE_WAYS: WireWay[] = [
    { name: "user name <role>.<id>", config: (t, pw) => plain(`clusterbase.${t.id}`, pw) },
    { name: "user name with the id in upper case", config: (t, pw) => plain(`clusterbase.${t.id.toUpperCase()}`, pw) },
    { name: "user name, TLS without SNI routing", config: (t, pw) => ({ ...plain(`clusterbase.${t.id}`, pw), ssl: { rejectUnauthorized: false, servername: "localhost" } }) },
    { name: "SNI db-<id>.localhost", config: (t, pw) => tlsBySni(sec.server, t.id, pw) },
    { name: "SNI in upper case", config: (t, pw) => ({ ...tlsBySni(sec.server, t.id, pw), ssl: { rejectUnauthorized: false, servername: host(t.id).toUpperCase() } }) },
    // SNI wins over the user name: the target is the database SNI names.
    { name: "SNI naming the target, user name naming the credential's database", config: (t, pw, o) => ({ ...tlsBySni(sec.server, t.id, pw), user: `clusterbase.${o.id}` }) },
    { name: "SNI naming the target, user name naming an unknown database", config: (t, pw) => ({ ...tlsBySni(sec.server, t.id, pw), user: "clusterbase.db-000000000000" }) },
    { name: "user name, another Postgres database", config: (t, pw) => ({ ...plain(`clusterbase.${t.id}`, pw), database: "postgres" }) },
  ];

  const FIELDS = ["name", "severity", "code", "message", "detail", "hint", "position", "schema", "table", "column", "constraint", "routine"] as const;
  async function attempt(config: pg.ClientConfig): Promise<{ ok: true; reached: string } | { ok: false; error: Record<string, unknown> }> {
    try {
      const c = await connectPg({ ...config, connectionTimeoutMillis: 20_000 });
      try {
        const { rows } = await c.query<{ name: string }>("SELECT name FROM whoami");
        return { ok: true, reached: rows[0]?.name ?? "" };
      } finally {
        await c.end();
      }
    } catch (e) {
      const err = e as pg.DatabaseError & Record<string, unknown>;
      return { ok: false, error: Object.fromEntries(FIELDS.map((f) => [f, err[f]])) };
    }
  }

  for (const way of WIRE_WAYS) {
    it(`wire, ${way.name}`, async () => {
      for (const target of sec.tenants) {
        for (const other of sec.tenants.filter((t) => t !== target)) {
          const theirs = await attempt(way.config(target, other.password, other));
          const wrong = await attempt(way.config(target, randomBytes(24).toString("base64url"), other));
          assert.equal(theirs.ok, false, `${other.name}'s password got into ${JSON.stringify(theirs)}`);
          assert.deepEqual(theirs, wrong, `${other.name}'s password on ${target.name} must get a wrong password's answer`);
          cells.wire++;
        }
        const own = await attempt(way.config(target, target.password, target));
        if (own.ok) {
          assert.equal(own.reached, target.name, "the right password reached another database");
          cells.reached++;
        }
      }
    });
  }

  it("the addressing ways that must work do work with the right credential", async () => {
    const [t] = sec.tenants as [Tenant];
    for (const name of ["path /v1/databases/<id>/query", "Host db-<id>.localhost /query", "Host in upper case", "Host with ccpd's port", "Neon /sql, token as the connection string's password", "Neon /sql, token as Bearer"]) {
      const way = HTTP_WAYS.find((w) => w.name === name) as HttpWay;
      const own = await send(way.build(t, t.token, t));
      assert.equal(own.status, 200, `${name}: ${own.body}`);
    }
    for (const name of ["user name <role>.<id>", "SNI db-<id>.localhost", "SNI in upper case", "user name, TLS without SNI routing"]) {
      const way = WIRE_WAYS.find((w) => w.name === name) as WireWay;
      assert.deepEqual(await attempt(way.config(t, t.password, t)), { ok: true, reached: t.name }, name);
    }
  });
});

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
function neon(connectionString: string): Record<string, string> {
  return { "neon-connection-string": connectionString };
}
