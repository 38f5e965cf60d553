import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import type { RunningServer } from "../src/index.js";
import { sqlAs } from "./support/instance-sql.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

/**
 * Issue 7: `provision` (owner role and password of one's choosing, seed 003's
 * rules), status, reset-password, token rotation and several Postgres
 * databases per instance, through the API, the gateway and the wire endpoint.
 */
describe("provision, status, reset-password, token rotation, databases per instance", () => {
  let t: TestServer;
  let server: RunningServer;
  let adminKey: string;
  let db: { id: string; token: string; password: string; url: string };
  const OWNER = "app_owner";
  const PASSWORD = "first-pass-123";

  const api = async (method: string, url: string, body?: unknown, token = adminKey) => {
    const res = await fetch(`${server.url}${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string } } };
  };
  const wire = async (user: string, password: string, database = "default") => {
    const c = new pg.Client({ host: "127.0.0.1", port: server.wirePort, user: `${user}.${db.id}`, password, database });
    await c.connect();
    return c;
  };
  const admin = <T extends pg.QueryResultRow>(sql: string, database = "postgres") => sqlAs<T>(server, db.id, sql, { admin: true, database });

  before(async () => {
    t = await startTestServer("provision");
    server = t.server;
    assert.ok(server.createdAdminKey);
    adminKey = server.createdAdminKey;
    const r = await api("POST", "/v1/databases", { name: "my_app", owner: OWNER, password: PASSWORD });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const database = r.body["database"] as { id: string; user: string };
    db = { id: database.id, token: r.body["token"] as string, password: r.body["password"] as string, url: r.body["database_url"] as string };
    assert.equal(database.user, OWNER);
  });
  after(async () => {
    await t?.dispose();
  });

  describe("validation: seed 003's rules at their boundaries, 400 with the reason", () => {
    const cases: [string, Record<string, unknown>, string, RegExp][] = [
      ["name of 2 characters", { name: "ab", owner: "okuser", password: "password" }, "invalid_name", /Invalid database instance name "ab": use 3–16 characters/],
      ["name of 17 characters", { name: "a".repeat(17), owner: "okuser", password: "password" }, "invalid_name", /Invalid database instance name/],
      ["name with uppercase", { name: "MyApp", owner: "okuser", password: "password" }, "invalid_name", /Invalid database instance name "MyApp"/],
      ["name with a hyphen", { name: "my-app", owner: "okuser", password: "password" }, "invalid_name", /Invalid database instance name "my-app"/],
      ["username of 2 characters", { name: "okname", owner: "ab", password: "password" }, "invalid_name", /Invalid username "ab": use 3–16 characters/],
      ["username of 17 characters", { name: "okname", owner: "u".repeat(17), password: "password" }, "invalid_name", /Invalid username/],
      ["username with uppercase", { name: "okname", owner: "Admin", password: "password" }, "invalid_name", /Invalid username "Admin"/],
      ["username with a hyphen", { name: "okname", owner: "app-user", password: "password" }, "invalid_name", /Invalid username "app-user"/],
      ["reserved username postgres", { name: "okname", owner: "postgres", password: "password" }, "invalid_name", /The username "postgres" is reserved/],
      ["reserved username ccp_admin", { name: "okname", owner: "ccp_admin", password: "password" }, "invalid_name", /"ccp_admin" is reserved/],
      ["reserved prefix pg_", { name: "okname", owner: "pg_monitor", password: "password" }, "invalid_name", /names starting with "pg_"/],
      ["reserved username public", { name: "okname", owner: "public", password: "password" }, "invalid_name", /"public" is reserved/],
      ["reserved username current_user", { name: "okname", owner: "current_user", password: "password" }, "invalid_name", /"current_user" is reserved/],
      ["password of 7 characters", { name: "okname", owner: "okuser", password: "1234567" }, "invalid_request", /password is too short: use 8 or more characters/],
      ["owner without a password", { name: "okname", owner: "okuser" }, "invalid_request", /A password is required/],
      ["password without an owner", { name: "okname", password: "password" }, "invalid_name", /A username is required/],
    ];
    for (const [what, body, code, message] of cases) {
      it(`refuses a ${what}`, async () => {
        const r = await api("POST", "/v1/databases", body);
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.equal(r.body.error?.code, code);
        assert.match(r.body.error?.message ?? "", message);
      });
    }

    it("leaves nothing behind after refusals", async () => {
      const list = await api("GET", "/v1/databases");
      assert.deepEqual((list.body["databases"] as { name: string }[]).map((d) => d.name), ["my_app"]);
    });

    it("accepts 3 and 16 characters and an 8-character password, then destroys cleanly", async () => {
      const r = await api("POST", "/v1/databases", { name: "abc", owner: "u".repeat(16), password: "12345678" });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const id = (r.body["database"] as { id: string }).id;
      const r2 = await api("POST", "/v1/databases", { name: "n".repeat(16), owner: "xyz", password: "12345678" });
      assert.equal(r2.status, 201, JSON.stringify(r2.body));
      for (const d of [id, (r2.body["database"] as { id: string }).id]) assert.equal((await api("DELETE", `/v1/databases/${d}`)).status, 200);
    });

    it("refuses a too-short password on reset-password too", async () => {
      const r = await api("POST", `/v1/databases/${db.id}/password`, { password: "short" });
      assert.equal(r.status, 400);
      assert.match(r.body.error?.message ?? "", /too short/);
    });
  });

  it("makes the owner the instance's only tenant role, with clusterbase's privileges and the default database", async () => {
    const roles = await admin<{ rolname: string; rolsuper: boolean; rolcreatedb: boolean; rolcreaterole: boolean; rolreplication: boolean; rolbypassrls: boolean; rolcanlogin: boolean }>(
      "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname",
    );
    assert.deepEqual(
      roles.map((r) => r.rolname),
      ["app_owner", "ccp_admin"],
    );
    assert.deepEqual(roles[0], { rolname: OWNER, rolsuper: false, rolcreatedb: true, rolcreaterole: false, rolreplication: false, rolbypassrls: false, rolcanlogin: true });
    const [owner] = await admin<{ owner: string }>("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'default'");
    assert.equal(owner?.owner, OWNER);
  });

  it("lets the owner in through the wire endpoint with the chosen password, and the gateway runs as the owner", async () => {
    assert.match(db.url, new RegExp(`^postgresql://${OWNER}\\.${db.id}:first-pass-123@127\\.0\\.0\\.1:${server.wirePort}/default$`));
    const c = await wire(OWNER, PASSWORD);
    const { rows } = await c.query("SELECT current_user AS u, current_database() AS d");
    assert.deepEqual(rows, [{ u: OWNER, d: "default" }]);
    await c.query("CREATE TABLE owned (id int)");
    await c.end();
    const q = await api("POST", `/v1/databases/${db.id}/query`, { sql: "SELECT current_user AS u, count(*)::int AS n FROM owned" }, db.token);
    assert.equal(q.status, 200, JSON.stringify(q.body));
    assert.deepEqual(q.body["rows"], [{ u: OWNER, n: 0 }]);
  });

  it("reset-password: new sessions need the new password; an open session stays alive", async () => {
    const old = await wire(OWNER, PASSWORD);
    const r = await api("POST", `/v1/databases/${db.id}/password`, { password: "second-pass-456" });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body["database_url"] as string, /:second-pass-456@/);
    assert.deepEqual((await old.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
    await assert.rejects(wire(OWNER, PASSWORD), (e: pg.DatabaseError) => e.code === "28P01");
    const fresh = await wire(OWNER, "second-pass-456");
    assert.deepEqual((await fresh.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
    await fresh.end();
    await old.end();
    const shown = await api("GET", `/v1/databases/${db.id}?show_secrets=true`);
    assert.equal(shown.body["database_url"], r.body["database_url"]);
  });

  it("token rotation: the old token is refused at once (no cache window), the new one works", async () => {
    const sql = { sql: "SELECT 1 AS one" };
    // Warm the gateway's row cache with the old token first.
    assert.equal((await api("POST", `/v1/databases/${db.id}/query`, sql, db.token)).status, 200);
    const r = await api("POST", `/v1/databases/${db.id}/token`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const fresh = r.body["token"] as string;
    assert.match(fresh, /^[0-9a-f]{64}$/);
    assert.notEqual(fresh, db.token);
    const stale = await api("POST", `/v1/databases/${db.id}/query`, sql, db.token);
    assert.equal(stale.status, 401);
    assert.equal(stale.body.error?.code, "unauthorized");
    assert.equal((await api("POST", `/v1/databases/${db.id}/query`, sql, fresh)).status, 200);
    db.token = fresh;
  });

  it("serves several Postgres databases per instance: CREATE DATABASE, then the `database` field on /query, /execute, /transaction", async () => {
    const created = await api("POST", `/v1/databases/${db.id}/execute`, { sql: "CREATE DATABASE app" }, db.token);
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const exec = await api("POST", `/v1/databases/${db.id}/execute`, { sql: "CREATE TABLE t (v int); INSERT INTO t VALUES (7)", database: "app" }, db.token);
    assert.equal(exec.status, 200, JSON.stringify(exec.body));
    const q = await api("POST", `/v1/databases/${db.id}/query`, { sql: "SELECT current_database() AS d, (SELECT v FROM t) AS v", database: "app" }, db.token);
    assert.deepEqual(q.body["rows"], [{ d: "app", v: 7 }]);
    const dflt = await api("POST", `/v1/databases/${db.id}/query`, { sql: "SELECT current_database() AS d" }, db.token);
    assert.deepEqual(dflt.body["rows"], [{ d: "default" }]);
    const tx = await api("POST", `/v1/databases/${db.id}/transaction`, { statements: [{ sql: "INSERT INTO t VALUES (8)" }, { sql: "SELECT count(*)::int AS n FROM t" }], database: "app" }, db.token);
    assert.equal(tx.status, 200, JSON.stringify(tx.body));
    assert.deepEqual((tx.body["results"] as { rows?: unknown[] }[])[1]?.rows, [{ n: 2 }]);
    const missing = await api("POST", `/v1/databases/${db.id}/query`, { sql: "SELECT 1", database: "nope" }, db.token);
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error?.code, "3D000");
    // The wire endpoint reaches it too.
    const c = await wire(OWNER, "second-pass-456", "app");
    assert.deepEqual((await c.query("SELECT count(*)::int AS n FROM t")).rows, [{ n: 2 }]);
    await c.end();
  });

  it("list and info show the owner and the databases inside each instance", async () => {
    const list = await api("GET", "/v1/databases");
    const mine = (list.body["databases"] as { id: string; user: string; databases?: string[] }[]).find((d) => d.id === db.id);
    assert.equal(mine?.user, OWNER);
    assert.deepEqual(mine?.databases, ["app", "default"]);
    const info = await api("GET", "/v1/databases/my_app");
    assert.deepEqual((info.body["database"] as { databases?: string[] }).databases, ["app", "default"]);
  });

  it("status: state, host, version, size, tenant connections, uptime, last backup", async () => {
    const c = await wire(OWNER, "second-pass-456");
    const r = await api("GET", "/v1/databases/my_app/status");
    await c.end();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const s = r.body["status"] as Record<string, unknown>;
    assert.equal(s["id"], db.id);
    assert.equal(s["state"], "ready");
    assert.equal(s["host"], `${db.id}.localhost`);
    assert.equal(s["owner"], OWNER);
    assert.match(s["pg_version"] as string, /^\d+\.\d+/);
    assert.ok((s["size_bytes"] as number) > 1_000_000, `size ${String(s["size_bytes"])}`);
    // The one wire session; ccp's own admin connection and gateway pool are not counted.
    assert.equal(s["connections"], 1);
    assert.equal(typeof s["max_connections"], "number");
    assert.ok(!Number.isNaN(Date.parse(s["started_at"] as string)));
    assert.ok((s["uptime_seconds"] as number) >= 0);
    assert.ok(s["last_backup_at"] === null || typeof s["last_backup_at"] === "string");
    assert.deepEqual(s["databases"], ["app", "default"]);
    assert.equal((await api("GET", "/v1/databases/nope/status")).status, 404);
  });

  it("lets the owner drop a database the gateway has pooled connections to, WITH (FORCE)", async () => {
    const r = await api("POST", `/v1/databases/${db.id}/execute`, { sql: "DROP DATABASE app WITH (FORCE)" }, db.token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const info = await api("GET", `/v1/databases/${db.id}`);
    assert.deepEqual((info.body["database"] as { databases?: string[] }).databases, ["default"]);
  });

  it("keeps plain `create` on clusterbase with a random password", async () => {
    const created = await server.databases.create("plain-db");
    assert.equal(created.database.user, "clusterbase");
    assert.match(created.database_url, /^postgresql:\/\/clusterbase\./);
    await server.databases.destroy(created.database.id);
  });
});
