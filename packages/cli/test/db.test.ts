import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { databaseHttpUrl } from "../src/project-config.js";
import { CCP_BIN, isAlive, postmasterPid, TestCcpd, waitFor } from "./helpers.js";

async function adminQuery<T extends pg.QueryResultRow>(socketDir: string, sql: string, user = "ccp_admin", database = "postgres"): Promise<T[]> {
  const client = new pg.Client({ host: socketDir, port: 5432, user, database });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

function parseCreate(stdout: string): { id: string; host: string; token: string } {
  const id = /ID\s+(db-[0-9a-f]{12})/.exec(stdout)?.[1];
  const host = /Host\s+(\S+)/.exec(stdout)?.[1];
  const token = /Token\s+(\S+)/.exec(stdout)?.[1];
  assert.ok(id && host && token, `unexpected create output:\n${stdout}`);
  return { id, host, token };
}

describe("ccp db create / list / info / destroy against a real ccpd", () => {
  const ccpd = new TestCcpd();
  let project: string;

  before(async () => {
    // No scheduled backups: the destroy test counts the database's operations, and the scheduler's first tick
    // after a minute would add one whenever the suite runs longer than that.
    await ccpd.start(["--backup-at", "off"]);
    project = path.join(ccpd.root, "project");
    mkdirSync(project);
  });
  after(() => ccpd.dispose());

  it("creates a database that answers SELECT 1 through the admin path, and saves its token (0600)", async () => {
    const r = await ccpd.ccp(["db", "create", "--name", "my-app-db"], { cwd: project });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /✓ Created database my-app-db/);
    assert.match(r.stdout, /✓ Token saved to \.cluster\/config\.json/);
    const { id, host, token } = parseCreate(r.stdout);
    assert.equal(host, `${id}.localhost`);
    assert.match(token, /^[0-9a-f]{12}\.\.\.$/);

    const file = path.join(project, ".cluster", "config.json");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const saved = JSON.parse(readFileSync(file, "utf8")) as { databaseId: string; token: string; host: string };
    assert.equal(saved.databaseId, id);
    assert.equal(saved.host, host);
    assert.equal(saved.token.slice(0, 12), token.slice(0, 12));
    assert.match(saved.token, /^[0-9a-f]{64}$/);

    const rows = await adminQuery<{ one: number }>(ccpd.socketDir(id), "SELECT 1 AS one");
    assert.deepEqual(rows, [{ one: 1 }]);
    // The tenant side: database "default" owned by the non-superuser "clusterbase".
    const [owner] = await adminQuery<{ owner: string; superuser: boolean; checksums: string; fsync: string }>(
      ccpd.socketDir(id),
      `SELECT pg_get_userbyid(d.datdba) AS owner, r.rolsuper AS superuser,
              current_setting('data_checksums') AS checksums, current_setting('fsync') AS fsync
         FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = 'default'`,
    );
    assert.deepEqual(owner, { owner: "clusterbase", superuser: false, checksums: "on", fsync: "on" });
    // Unix socket only: no TCP listener.
    const [listen] = await adminQuery<{ listen_addresses: string }>(ccpd.socketDir(id), "SHOW listen_addresses");
    assert.equal(listen?.listen_addresses, "");
  });

  it("runs instances as an unprivileged user when ccpd is root", { skip: process.getuid?.() !== 0 }, async () => {
    const list = JSON.parse((await ccpd.ccp(["db", "list", "--json"])).stdout) as { databases: { id: string }[] };
    const id = list.databases[0]?.id as string;
    const pid = postmasterPid(path.join(ccpd.instanceDir(id), "data")) as number;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    assert.notEqual(uid, 0);
  });

  it("lists databases (list and ls), as text and JSON", async () => {
    const r = await ccpd.ccp(["db", "list"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /• my-app-db\s+ready\s+db-[0-9a-f]{12}\n\s+db-[0-9a-f]{12}\.localhost/);
    const ls = await ccpd.ccp(["db", "ls", "--json"]);
    assert.equal(ls.code, 0);
    const parsed = JSON.parse(ls.stdout) as { databases: { name: string; status: string }[] };
    assert.deepEqual(parsed.databases.map((d) => [d.name, d.status]), [["my-app-db", "ready"]]);
  });

  it("shows info by id and by name", async () => {
    const byName = await ccpd.ccp(["db", "info", "my-app-db"]);
    assert.equal(byName.code, 0, byName.stderr);
    const id = /ID\s+(db-[0-9a-f]{12})/.exec(byName.stdout)?.[1] as string;
    for (const line of [/Database my-app-db/, /Status\s+ready/, /Host\s+db-[0-9a-f]{12}\.localhost/, /Database\s+default/, /User\s+clusterbase/]) {
      assert.match(byName.stdout, line);
    }
    const byId = await ccpd.ccp(["db", "info", id, "--json"]);
    assert.equal((JSON.parse(byId.stdout) as { database: { name: string } }).database.name, "my-app-db");
  });

  describe("bad input gets a clear message, a non-zero exit, and leaves nothing behind", () => {
    const invalidNames = ["ab", "a".repeat(33), "My-db", "1abc", "-abc", "has space", "dots.not.ok", "ünï"];
    for (const name of invalidNames) {
      it(`refuses the name ${JSON.stringify(name)}`, async () => {
        const r = await ccpd.ccp(["db", "create", "--name", name], { cwd: ccpd.root });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /Invalid database name/);
        assert.match(r.stderr, /3–32 characters/);
      });
    }

    it("refuses an invalid name at the API too, with a 400 and an error body", async () => {
      const res = await fetch(`${ccpd.url}/v1/databases`, {
        method: "POST",
        headers: { authorization: `Bearer ${ccpd.adminKey()}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "UPPER" }),
      });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "invalid_name");
    });

    it("accepts the boundary lengths 3 and 32", async () => {
      for (const name of ["abc", `b${"x".repeat(31)}`]) {
        const r = await ccpd.ccp(["db", "create", "--name", name, "--json"], { cwd: ccpd.root });
        assert.equal(r.code, 0, r.stderr);
        const id = (JSON.parse(r.stdout) as { database: { id: string } }).database.id;
        assert.equal((await ccpd.ccp(["db", "rm", id, "-y"], { cwd: ccpd.root })).code, 0);
      }
    });

    it("refuses a duplicate name and creates nothing", async () => {
      const before = await ccpd.ccp(["db", "list", "--json"]);
      const r = await ccpd.ccp(["db", "create", "--name", "my-app-db"], { cwd: ccpd.root });
      assert.equal(r.code, 5);
      assert.match(r.stderr, /already exists/);
      assert.equal((await ccpd.ccp(["db", "list", "--json"])).stdout, before.stdout);
    });

    it("reports an unknown id or name with a hint to run ccp db list", async () => {
      for (const args of [["db", "info", "db-000000000000"], ["db", "info", "no-such-db"], ["db", "rm", "no-such-db", "-y"]]) {
        const r = await ccpd.ccp(args);
        assert.equal(r.code, 3, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, /No database with id or name/);
        assert.match(r.stderr, /ccp db list/);
      }
    });

    it("refuses a wrong admin key (CLI exit 4, API 401)", async () => {
      const r = await ccpd.ccp(["db", "list"], { env: { CCP_API_KEY: "ccpk_wrong" } });
      assert.equal(r.code, 4);
      assert.match(r.stderr, /admin API key is not valid/);
      const res = await fetch(`${ccpd.url}/v1/databases`, { headers: { authorization: "Bearer nope" } });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, "unauthorized");
      const none = await fetch(`${ccpd.url}/v1/databases`);
      assert.equal(none.status, 401);
    });

    it("says how to start ccpd when it is unreachable", async () => {
      const r = await ccpd.ccp(["db", "list"], { env: { CCP_API_URL: "http://127.0.0.1:1" } });
      assert.equal(r.code, 6);
      assert.match(r.stderr, /Cannot reach ccpd at http:\/\/127\.0\.0\.1:1/);
      assert.match(r.stderr, /npm start|ccp server start/);
      const status = await ccpd.ccp(["server", "status"], { env: { CCP_API_URL: "http://127.0.0.1:1" } });
      assert.equal(status.code, 6);
      assert.match(status.stderr, /not running/);
    });

    it("keeps the database when destroy is declined or unanswered", async () => {
      for (const input of ["n\n", "", "maybe\n"]) {
        const r = await ccpd.ccp(["db", "destroy", "my-app-db"], { input });
        assert.equal(r.code, 7, r.stderr);
        assert.match(r.stderr, /Delete database db-[0-9a-f]{12}\? This will destroy all data\. \(y\/N\)/);
        assert.match(r.stderr, /Not destroyed/);
      }
      const info = await ccpd.ccp(["db", "info", "my-app-db"]);
      assert.match(info.stdout, /Status\s+ready/);
    });

    it("rejects a missing --name and unknown options as usage errors", async () => {
      assert.equal((await ccpd.ccp(["db", "create"])).code, 2);
      assert.equal((await ccpd.ccp(["db", "list", "--bogus"])).code, 2);
    });

    it("answers unknown routes and malformed bodies with 4xx JSON errors", async () => {
      const auth = { authorization: `Bearer ${ccpd.adminKey()}`, "content-type": "application/json" };
      const bad = await fetch(`${ccpd.url}/v1/databases`, { method: "POST", headers: auth, body: "{not json" });
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { error: { code: string } }).error.code, "invalid_request");
      const extra = await fetch(`${ccpd.url}/v1/databases`, { method: "POST", headers: auth, body: JSON.stringify({ name: "okname", x: 1 }) });
      assert.equal(extra.status, 400);
      const missing = await fetch(`${ccpd.url}/v1/nothing`, { headers: auth });
      assert.equal(missing.status, 404);
    });
  });

  it("ccp login checks the key before saving it, and server status reports ccpd up", async () => {
    const other = path.join(ccpd.root, "other-user");
    const env = { XDG_CONFIG_HOME: other, CCP_API_URL: "", CCP_API_KEY: "" };
    const bad = await ccpd.ccp(["login", "--api-url", ccpd.url, "--token", "ccpk_wrong"], { env });
    assert.equal(bad.code, 4);
    assert.equal(existsSync(path.join(other, "ccp", "config.json")), false);
    const good = await ccpd.ccp(["login", "--api-url", ccpd.url, "--token", ccpd.adminKey()], { env });
    assert.equal(good.code, 0, good.stderr);
    assert.equal(statSync(path.join(other, "ccp", "config.json")).mode & 0o777, 0o600);
    assert.equal((await ccpd.ccp(["db", "list", "--json"], { env })).code, 0);
    const status = await ccpd.ccp(["server", "status"]);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /ccpd \S+ is up at http:\/\/127\.0\.0\.1:\d+/);
  });

  it("ccp run injects DATABASE_URL, DATABASE_TOKEN and DATABASE_ID, and passes the exit code through", async () => {
    const saved = JSON.parse(readFileSync(path.join(project, ".cluster", "config.json"), "utf8")) as { databaseId: string; token: string; databaseUrl: string };
    const r = await ccpd.ccp(["run", "--", "sh", "-c", 'printf "%s|%s|%s" "$DATABASE_ID" "$DATABASE_TOKEN" "$DATABASE_URL"; exit 3'], { cwd: project });
    assert.equal(r.code, 3);
    assert.equal(r.stdout, `${saved.databaseId}|${saved.token}|${saved.databaseUrl}`);
    assert.match(saved.databaseUrl, /^postgresql:\/\/clusterbase\.db-[0-9a-f]{12}:[^@]+@127\.0\.0\.1:\d+\/default$/);
    const outside = await ccpd.ccp(["run", "--", "true"], { cwd: ccpd.root });
    assert.equal(outside.code, 2);
    assert.match(outside.stderr, /No \.cluster\/config\.json/);
  });

  // Regression (issue 18, item 6): the documented handler fetched https://${DATABASE_ID}.<domain>/query, which on the
  // default domain localhost fails (Node's fetch cannot resolve db-<id>.localhost). This runs the README's own snippet.
  it("the README's 'Querying from handlers' snippet runs as is with ccp run (DATABASE_HTTP_URL)", async () => {
    const readme = readFileSync(path.join(CCP_BIN, "..", "..", "..", "..", "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Querying from handlers"));
    const snippet = /```js\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(snippet && snippet.includes("DATABASE_HTTP_URL"), "README has no handler snippet");
    writeFileSync(path.join(project, "handler.mjs"), snippet);
    const created = await ccpd.ccp(["db", "exec", "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (42, 'Ada'), (7, 'Grace')"], { cwd: project });
    assert.equal(created.code, 0, created.stderr);
    const r = await ccpd.ccp(["run", "--", process.execPath, "handler.mjs"], { cwd: project });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "[ { id: 42, name: 'Ada' } ]");
    const saved = JSON.parse(readFileSync(path.join(project, ".cluster", "config.json"), "utf8")) as { databaseId: string; httpUrl: string };
    assert.equal(saved.httpUrl, `${ccpd.url}/v1/databases/${saved.databaseId}`);
    const env = await ccpd.ccp(["run", "--", "sh", "-c", 'printf "%s" "$DATABASE_HTTP_URL"'], { cwd: project });
    assert.equal(env.stdout, saved.httpUrl);
  });

  it("DATABASE_HTTP_URL is host-routed for a real --domain, path-routed on localhost", () => {
    assert.equal(databaseHttpUrl("http://127.0.0.1:7070", "db-0123456789ab", "db-0123456789ab.localhost"), "http://127.0.0.1:7070/v1/databases/db-0123456789ab");
    assert.equal(databaseHttpUrl("https://ccp.example.com/", "db-0123456789ab", "db-0123456789ab.example.com"), "https://db-0123456789ab.example.com");
    assert.equal(databaseHttpUrl("http://10.0.0.5:7070", "db-0123456789ab", "db-0123456789ab.example.com"), "http://db-0123456789ab.example.com:7070");
  });

  it("serves an OpenAPI document describing /v1/databases", async () => {
    const res = await fetch(`${ccpd.url}/v1/openapi.json`);
    assert.equal(res.status, 200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.match(doc.openapi, /^3\./);
    assert.ok(doc.paths["/v1/databases"]?.["post"]);
    assert.ok(doc.paths["/v1/databases"]?.["get"]);
    assert.ok(doc.paths["/v1/databases/{ref}"]?.["delete"]);
  });

  it("destroys: the process, the data dir and the catalog row are gone", async () => {
    const info = JSON.parse((await ccpd.ccp(["db", "info", "my-app-db", "--json"])).stdout) as { database: { id: string } };
    const id = info.database.id;
    const pid = postmasterPid(path.join(ccpd.instanceDir(id), "data"));
    assert.ok(pid && isAlive(pid));
    const r = await ccpd.ccp(["db", "rm", "my-app-db", "-y"], { cwd: project });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /✓ Destroyed database my-app-db/);
    assert.match(r.stdout, /Removed \.cluster\/config\.json/);
    assert.equal(existsSync(path.join(project, ".cluster", "config.json")), false);
    assert.equal(isAlive(pid), false);
    assert.equal(existsSync(ccpd.instanceDir(id)), false);
    const rows = await adminQuery(ccpd.catalogSocketDir(), `SELECT id FROM ccp.databases WHERE id = '${id}'`);
    assert.deepEqual(rows, []);
    const ops = await adminQuery<{ kind: string; state: string }>(ccpd.catalogSocketDir(), `SELECT kind, state FROM ccp.operations WHERE database_id = '${id}' ORDER BY id`);
    assert.deepEqual(ops.map((o) => `${o.kind}:${o.state}`), ["create:done", "destroy:done"]);
  });
});

describe("ccpd lifecycle: restart, crash supervision", () => {
  const ccpd = new TestCcpd();
  let id: string;

  before(async () => {
    await ccpd.start();
    const r = await ccpd.ccp(["db", "create", "--name", "durable", "--json"], { cwd: ccpd.root });
    assert.equal(r.code, 0, r.stderr);
    id = (JSON.parse(r.stdout) as { database: { id: string } }).database.id;
    await adminQuery(ccpd.socketDir(id), "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2), (3)", "clusterbase", "default");
  });
  after(() => ccpd.dispose());

  it("SIGTERM stops every instance cleanly; the next start brings them back with their data", async () => {
    const pid = postmasterPid(path.join(ccpd.instanceDir(id), "data")) as number;
    assert.equal(await ccpd.stop("SIGTERM"), 0);
    assert.equal(isAlive(pid), false);
    // A clean shutdown removes postmaster.pid.
    assert.equal(existsSync(path.join(ccpd.instanceDir(id), "data", "postmaster.pid")), false);
    await ccpd.start();
    const info = await ccpd.ccp(["db", "info", id]);
    assert.match(info.stdout, /Status\s+ready/);
    const rows = await adminQuery<{ n: number }>(ccpd.socketDir(id), "SELECT n FROM t ORDER BY n", "clusterbase", "default");
    assert.deepEqual(rows.map((r) => r.n), [1, 2, 3]);
  });

  it("restarts a postmaster killed with SIGKILL, records the restart, and keeps committed data", async () => {
    await adminQuery(ccpd.socketDir(id), "INSERT INTO t VALUES (4)", "clusterbase", "default");
    const pid = postmasterPid(path.join(ccpd.instanceDir(id), "data")) as number;
    process.kill(pid, "SIGKILL");
    const newPid = await waitFor("a new postmaster", () => {
      const p = postmasterPid(path.join(ccpd.instanceDir(id), "data"));
      return p && p !== pid && isAlive(p) ? p : undefined;
    }, 60_000).catch((err: Error) => {
      // Say why: ccpd's log and the instance's.
      const log = readFileSync(path.join(ccpd.instanceDir(id), "postgres.log"), "utf8").split("\n").slice(-20).join("\n");
      throw new Error(`${err.message}\nccpd:\n${ccpd.output}\npostgres.log:\n${log}`);
    });
    assert.notEqual(newPid, pid);
    const rows = await waitFor("the restarted instance to answer", () =>
      adminQuery<{ n: number }>(ccpd.socketDir(id), "SELECT n FROM t ORDER BY n", "clusterbase", "default"),
    );
    assert.deepEqual(rows.map((r) => r.n), [1, 2, 3, 4]);
    const info = await waitFor("the restart to be recorded", async () => {
      const d = JSON.parse((await ccpd.ccp(["db", "info", id, "--json"])).stdout) as { database: { restarts: number; status: string } };
      return d.database.restarts >= 1 && d.database.status === "ready" ? d.database : undefined;
    });
    assert.equal(info.restarts, 1);
    const events = await adminQuery<{ detail: { signal: string } }>(ccpd.catalogSocketDir(), `SELECT detail FROM ccp.instance_events WHERE database_id = '${id}' AND kind = 'restart'`);
    assert.equal(events[0]?.detail.signal, "SIGKILL");
  });

  it("after ccpd itself is killed with SIGKILL, the next start takes over the instances", async () => {
    const pid = postmasterPid(path.join(ccpd.instanceDir(id), "data")) as number;
    await ccpd.stop("SIGKILL");
    await ccpd.start();
    const rows = await waitFor("the instance to answer", () =>
      adminQuery<{ n: number }>(ccpd.socketDir(id), "SELECT count(*)::int AS n FROM t", "clusterbase", "default"),
    );
    assert.deepEqual(rows, [{ n: 4 }]);
    // The old postmaster was shut down and replaced by one this ccpd supervises.
    assert.equal(isAlive(pid), false);
  });

  it("refuses a second ccpd on the same data dir", async () => {
    const second = await ccpd.ccp(["server", "start", "--port", "0", "--wire-port", "0", "--data-dir", ccpd.dataDir]);
    assert.equal(second.code, 5, second.stderr); // conflict, as the README's exit codes say
    assert.match(second.stderr, /Another ccpd \(pid \d+\) is already using/);
  });
});
