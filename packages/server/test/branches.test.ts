import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { catalogSql } from "./support/catalog-sql.js";
import { gatherWal } from "../src/branches/copy.js";
import { parseTtl } from "../src/branches/service.js";
import { isCcpError } from "../src/errors.js";
import type { RunningServer } from "../src/index.js";
import { connectInstance, sqlAs } from "./support/instance-sql.js";
import { startTestServer, type TestServer } from "./support/test-server.js";
import { connectPg, tlsBySni } from "./wire-clients.js";

describe("branches: a full copy of a database, from now or an instant, resettable, expiring", () => {
  let t: TestServer;
  let server: RunningServer;
  let parent: { id: string; token: string; password: string };

  before(async () => {
    t = await startTestServer("branches", { archiveTimeoutS: 5 });
    server = t.server;
    const created = await server.databases.create("parent-db");
    parent = { id: created.database.id, token: created.token, password: created.password };
    await sql(parent.id, "CREATE TABLE batches (batch int, n int)");
  });
  after(async () => {
    await t?.dispose();
  });

  const sql = <T extends pg.QueryResultRow = Record<string, unknown>>(id: string, text: string, user = "clusterbase", database = "default") =>
    sqlAs<T>(server, id, text, { user, database });
  const insertBatch = (id: string, b: number) => sql(id, `INSERT INTO batches SELECT ${b}, g FROM generate_series(1, 1000) g`);
  const batches = async (id: string) => (await sql<{ batch: number }>(id, "SELECT DISTINCT batch FROM batches ORDER BY batch")).map((r) => r.batch);
  const count = async (id: string) => Number((await sql<{ c: string }>(id, "SELECT count(*) AS c FROM batches"))[0]?.c);
  const gatewayCount = async (id: string, token: string) => {
    const res = await fetch(`${server.url}/v1/databases/${id}/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ sql: "SELECT count(*)::int AS c FROM batches" }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { rows: { c: number }[] }).rows[0]?.c;
  };
  const instanceDirs = () => readdirSync(path.join(server.config.dataDir, "instances")).filter((n) => n.startsWith("db-")).sort();
  const databaseIds = async () => (await server.databases.list()).map((d) => d.id).sort();
  const admin = (method: string, pathname: string, body?: unknown) =>
    fetch(`${server.url}${pathname}`, {
      method,
      headers: { authorization: `Bearer ${server.createdAdminKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  let branch: { id: string; token: string; password: string; url: string };

  it("a branch from now holds exactly the parent's rows at that instant, and writes on either side stay on that side", async () => {
    await insertBatch(parent.id, 1);
    await insertBatch(parent.id, 2);
    const created = await server.branches.create(parent.id, { name: "feature-x" });
    branch = { id: created.database.id, token: created.token, password: created.password, url: created.database_url };
    await insertBatch(parent.id, 3);

    assert.notEqual(branch.id, parent.id);
    assert.equal(created.database.parent_id, parent.id);
    assert.equal(created.database.status, "ready");
    assert.ok(created.database.branched_at, "branched_at is recorded");
    assert.match(created.database.branch_lsn ?? "", /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.deepEqual(await batches(branch.id), [1, 2]);
    assert.equal(await count(branch.id), 2000);

    await insertBatch(branch.id, 9);
    assert.deepEqual(await batches(branch.id), [1, 2, 9]);
    assert.deepEqual(await batches(parent.id), [1, 2, 3]);
    // Its own credentials: its token works, the parent's does not open it.
    assert.equal(await gatewayCount(branch.id, branch.token), 3000);
    const wrong = await fetch(`${server.url}/v1/databases/${branch.id}/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${parent.token}`, "content-type": "application/json" },
      body: JSON.stringify({ sql: "SELECT 1" }),
    });
    assert.equal(wrong.status, 401);
    const wire = await connectPg(tlsBySni(server, branch.id, branch.password));
    assert.equal((await wire.query("SELECT count(*)::int AS c FROM batches")).rows[0].c, 3000);
    await wire.end();
  });

  it("branch list and db list show which database is a branch of which", async () => {
    const all = await server.branches.list();
    assert.deepEqual(all.map((d) => d.id), [branch.id]);
    assert.deepEqual((await server.branches.list("parent-db")).map((d) => d.id), [branch.id]);
    const res = await admin("GET", "/v1/databases");
    const listed = ((await res.json()) as { databases: { id: string; parent_id?: string }[] }).databases;
    assert.equal(listed.find((d) => d.id === branch.id)?.parent_id, parent.id);
    assert.equal(listed.find((d) => d.id === parent.id)?.parent_id, undefined);
    const doc = (await (await fetch(`${server.url}/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    for (const [p, method] of [["/v1/databases/{ref}/branches", "post"], ["/v1/databases/{ref}/branches", "get"], ["/v1/branches", "get"], ["/v1/databases/{ref}/reset-from-parent", "post"]] as const) {
      assert.ok(doc.paths[p]?.[method], `OpenAPI has ${method.toUpperCase()} ${p}`);
    }
    const byApi = await admin("GET", `/v1/databases/${parent.id}/branches`);
    assert.equal(byApi.status, 200);
    assert.deepEqual(((await byApi.json()) as { databases: { id: string }[] }).databases.map((d) => d.id), [branch.id]);
  });

  it("reset brings the parent's latest state and keeps the branch's id, token and password", async () => {
    const urlBefore = await server.databases.databaseUrl(branch.id);
    await insertBatch(parent.id, 4);
    const res = await admin("POST", `/v1/databases/${branch.id}/reset-from-parent`);
    assert.equal(res.status, 200, await res.clone().text());
    const view = ((await res.json()) as { database: { id: string; status: string; host: string } }).database;
    assert.equal(view.id, branch.id);
    assert.equal(view.status, "ready");
    assert.deepEqual(await batches(branch.id), [1, 2, 3, 4]);
    assert.equal(await gatewayCount(branch.id, branch.token), 4000);
    assert.equal(await server.databases.databaseUrl(branch.id), urlBefore);
    const wire = await connectPg(tlsBySni(server, branch.id, branch.password));
    assert.equal((await wire.query("SELECT count(*)::int AS c FROM batches")).rows[0].c, 4000);
    await wire.end();
    // The branch still takes writes after the reset, and archives them (its next backup works).
    await insertBatch(branch.id, 8);
    const b = await server.backups.create(branch.id);
    assert.equal(b.status, "ready");
    assert.deepEqual(await batches(parent.id), [1, 2, 3, 4]);
  });

  it("a branch of a branch (a parent on a later timeline) holds its rows, archives its own WAL, resets and is branched again", async () => {
    const timeline = async (id: string) => Number((await sqlAs<{ t: number }>(server, id, "SELECT timeline_id AS t FROM pg_control_checkpoint()", { admin: true }))[0]?.t);
    const child = (await server.branches.create(branch.id, { name: "feature-x-child" })).database.id;
    assert.deepEqual(await batches(child), [1, 2, 3, 4, 8]);
    assert.ok((await timeline(child)) > (await timeline(branch.id)), "the copy promoted onto a timeline of its own");
    await insertBatch(child, 20);
    assert.equal((await server.backups.create(child)).status, "ready", "its archive takes its own timeline's WAL and history");
    await insertBatch(branch.id, 21);
    const res = await admin("POST", `/v1/databases/${child}/reset-from-parent`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await batches(child), [1, 2, 3, 4, 8, 21]);
    const grandchild = (await server.branches.create(child, { name: "feature-x-grandchild" })).database.id;
    assert.deepEqual(await batches(grandchild), [1, 2, 3, 4, 8, 21]);
    await insertBatch(grandchild, 22);
    assert.deepEqual(await batches(child), [1, 2, 3, 4, 8, 21]);
    await server.databases.destroy(grandchild);
    await server.databases.destroy(child);
  });

  it("resetting a database that is not a branch is a clear 400", async () => {
    const res = await admin("POST", `/v1/databases/${parent.id}/reset-from-parent`);
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /not a branch/);
  });

  it("a branch at an earlier instant and at an LSN come from the parent's backups and WAL", async () => {
    await server.backups.create(parent.id);
    await insertBatch(parent.id, 5);
    const [{ lsn }] = (await sql<{ lsn: string }>(parent.id, "SELECT pg_current_wal_lsn()::text AS lsn", "ccp_admin", "postgres")) as [{ lsn: string }];
    await sleep(1100);
    const instant = new Date();
    await sleep(1100);
    await insertBatch(parent.id, 6);

    const atTime = await server.branches.create(parent.id, { name: "at-time", at: instant.toISOString() });
    assert.deepEqual(await batches(atTime.database.id), [1, 2, 3, 4, 5]);
    assert.equal(atTime.database.branched_at, instant.toISOString());
    const atLsn = await server.branches.create(parent.id, { name: "at-lsn", at: lsn });
    assert.deepEqual(await batches(atLsn.database.id), [1, 2, 3, 4, 5]);
    assert.deepEqual(await batches(parent.id), [1, 2, 3, 4, 5, 6]);
    await server.databases.destroy(atTime.database.id);
    await server.databases.destroy(atLsn.database.id);
  });

  it("a branch of a parent under write load is consistent (row counts, totals, amcheck)", async () => {
    await sql(parent.id, "CREATE TABLE ledger (id bigserial PRIMARY KEY, v int NOT NULL); CREATE INDEX ledger_v ON ledger (v); CREATE TABLE totals (n bigint NOT NULL); INSERT INTO totals VALUES (0)");
    let stop = false;
    let written = 0;
    const writer = async (w: number) => {
      const c = await connectInstance(server, parent.id);
      try {
        while (!stop) {
          await c.query(`BEGIN; INSERT INTO ledger (v) SELECT ${w} FROM generate_series(1, 50); UPDATE totals SET n = n + 50; COMMIT`);
          written += 50;
        }
      } finally {
        await c.end();
      }
    };
    const writers = [writer(1), writer(2), writer(3)];
    while (written < 2000) await sleep(20);
    const loaded = await server.branches.create(parent.id, { name: "under-load" });
    stop = true;
    await Promise.all(writers);
    const [row] = await sql<{ rows: string; total: string }>(loaded.database.id, "SELECT (SELECT count(*) FROM ledger) AS rows, (SELECT n FROM totals) AS total");
    assert.ok(Number(row?.rows) > 0, "the branch has the rows written before it");
    assert.equal(row?.rows, row?.total, "every transaction is wholly in or wholly out");
    assert.ok(Number(row?.rows) <= written);
    // amcheck ships with Postgres; the admin role installs it (on the branch only).
    await sql(loaded.database.id, "CREATE EXTENSION IF NOT EXISTS amcheck", "ccp_admin", "default");
    await sql(loaded.database.id, "SELECT bt_index_check('ledger_pkey'::regclass, true), bt_index_check('ledger_v'::regclass, true)", "ccp_admin", "default");
    await server.databases.destroy(loaded.database.id);
  });

  it("a branch of a suspended parent copies its files at rest and does not wake it", async () => {
    const sleeper = (await server.databases.create("sleeping-parent")).database.id;
    await sql(sleeper, "CREATE TABLE batches (batch int, n int)");
    await insertBatch(sleeper, 1);
    await insertBatch(sleeper, 2);
    assert.equal(await server.instances.suspend(sleeper), true);
    assert.equal(await server.instances.state(sleeper), "suspended");
    const copy = await server.branches.create("sleeping-parent", { name: "from-sleeper" });
    assert.deepEqual(await batches(copy.database.id), [1, 2]);
    assert.equal(await server.instances.state(sleeper), "suspended", "the parent still sleeps");
    const { rows } = await catalogSql(server.catalog, (q) => q.query("SELECT 1 FROM ccp.instance_events WHERE database_id = $1 AND kind = 'wake'", [sleeper]));
    assert.equal(rows.length, 0, "no wake was recorded");
    // Writes on the branch stay there; the parent, woken later, has its own data.
    await insertBatch(copy.database.id, 3);
    const lease = await server.instances.use(sleeper);
    lease.release();
    assert.deepEqual(await batches(sleeper), [1, 2]);
    await server.databases.destroy(copy.database.id);
    await server.databases.destroy(sleeper);
  });

  it("bad inputs get clear errors and leave nothing behind", async () => {
    // "before retention" needs a backup to be before (the earlier cases take one; this case alone must too).
    if ((await server.backups.list(parent.id)).length === 0) await server.backups.create(parent.id);
    const ids = await databaseIds();
    const dirs = instanceDirs();
    const cases: [string, () => Promise<unknown>, string, RegExp][] = [
      ["unknown parent", () => server.branches.create("no-such-db", { name: "bad-b1" }), "not_found", /No database/],
      ["instant in the future", () => server.branches.create(parent.id, { name: "bad-b2", at: new Date(Date.now() + 3_600_000).toISOString() }), "invalid_request", /in the future/],
      ["instant before retention", () => server.branches.create(parent.id, { name: "bad-b3", at: "2001-01-01T00:00:00Z" }), "invalid_request", /outside the restorable window/],
      ["LSN in the future", () => server.branches.create(parent.id, { name: "bad-b4", at: "FF/0" }), "invalid_request", /in the future/],
      ["LSN before retention", () => server.branches.create(parent.id, { name: "bad-b5", at: "0/1" }), "invalid_request", /before the restorable window/],
      ["name taken", () => server.branches.create(parent.id, { name: "parent-db" }), "name_taken", /already exists/],
      ["bad name", () => server.branches.create(parent.id, { name: "X!" }), "invalid_name", /./],
      ["bad instant", () => server.branches.create(parent.id, { name: "bad-b6", at: "yesterday" }), "invalid_request", /RFC 3339/],
      ["bad ttl", () => server.branches.create(parent.id, { name: "bad-b7", ttl: "2 hours" }), "invalid_request", /Invalid ttl/],
      ["expiry in the past", () => server.branches.create(parent.id, { name: "bad-b8", expires_at: "2001-01-01T00:00:00Z" }), "invalid_request", /not in the future/],
      ["ttl and expires_at", () => server.branches.create(parent.id, { name: "bad-b9", ttl: "1h", expires_at: "2099-01-01T00:00:00Z" }), "invalid_request", /not both/],
    ];
    for (const [what, fn, code, message] of cases) {
      await assert.rejects(fn, (err: unknown) => {
        assert.ok(isCcpError(err), `${what}: ${String(err)}`);
        assert.equal(err.code, code, what);
        assert.ok(err.status < 500, what);
        assert.match(err.message, message, what);
        return true;
      });
    }
    // Over HTTP: a 4xx with the error body, never a 5xx.
    const res = await admin("POST", `/v1/databases/${parent.id}/branches`, { name: "bad-b10", at: "tomorrow" });
    assert.equal(res.status, 400);
    assert.equal((await admin("POST", "/v1/databases/nope/branches", { name: "bad-b11" })).status, 404);
    assert.deepEqual(await databaseIds(), ids);
    assert.deepEqual(instanceDirs(), dirs);
  });

  it("destroying a parent that has branches is refused (409) unless forced; its branches then stay, standalone", async () => {
    const other = await server.databases.create("other-parent");
    const child = await server.branches.create(other.database.id, { name: "other-child" });
    const refused = await admin("DELETE", `/v1/databases/${other.database.id}`);
    assert.equal(refused.status, 409);
    const body = (await refused.json()) as { error: { message: string; branches: string[] } };
    assert.match(body.error.message, /1 branch: other-child/);
    assert.deepEqual(body.error.branches, [child.database.id]);
    assert.equal((await server.databases.get(other.database.id)).status, "ready");
    const forced = await admin("DELETE", `/v1/databases/${other.database.id}?force=true`);
    assert.equal(forced.status, 200);
    const orphan = await server.databases.get(child.database.id);
    assert.equal(orphan.parent_id, undefined);
    assert.equal(orphan.status, "ready");
    await server.databases.destroy(child.database.id);
  });

  it("after a crash mid-reset, reconcile gives the branch its previous data back", async () => {
    const dataDir = server.driver.dataDir(branch.id);
    const before = await batches(branch.id);
    await server.driver.stop(branch.id);
    // As left by a ccpd killed right after moving the live data aside, with a half-made copy beside it.
    renameSync(dataDir, `${dataDir}.old`);
    mkdirSync(`${dataDir}.reset`);
    const opId = await server.catalog.operations.begin(branch.id, "branch-reset");
    await server.catalog.databases.setStatus(branch.id, "restoring");
    await server.branches.reconcile();
    await server.driver.start(branch.id);
    assert.deepEqual(await batches(branch.id), before);
    assert.equal((await server.databases.get(branch.id)).status, "ready");
    assert.equal(existsSync(`${dataDir}.reset`), false);
    assert.equal(existsSync(`${dataDir}.old`), false);
    const { rows } = await catalogSql(server.catalog, (q) => q.query<{ state: string }>("SELECT state FROM ccp.operations WHERE id = $1", [opId]));
    assert.equal(rows[0]?.state, "failed");
  });

  it("an expired branch is gone with its processes, files and backups", async () => {
    const short = await server.branches.create(parent.id, { name: "short-lived", ttl: "2h" });
    const id = short.database.id;
    assert.ok(short.database.expires_at);
    const expires = new Date(short.database.expires_at as string);
    assert.ok(Math.abs(expires.getTime() - Date.now() - 2 * 3_600_000) < 60_000);
    await server.backups.create(id);
    const pid = server.driver.pid(id) as number;
    assert.ok(pid > 0);
    assert.deepEqual(await server.branches.sweep(new Date()), [], "not expired yet");
    assert.deepEqual(await server.branches.sweep(new Date(expires.getTime() + 1000)), [id]);
    await assert.rejects(server.databases.get(id), (err: unknown) => isCcpError(err) && err.code === "not_found");
    assert.equal(await server.driver.state(id), "absent");
    assert.equal(existsSync(path.join(server.config.dataDir, "instances", id)), false);
    assert.equal(existsSync(path.join(server.config.dataDir, "backups", id)), false);
    assert.throws(() => process.kill(pid, 0), /ESRCH/);
    const { rows } = await catalogSql(server.catalog, (q) => q.query("SELECT id FROM ccp.backups WHERE database_id = $1", [id]));
    assert.equal(rows.length, 0);
  });
});

describe("branch ttl parsing (pure)", () => {
  it("reads 90s, 30m, 2h and 7d, and refuses anything else with a clear 400", () => {
    assert.equal(parseTtl("90s"), 90_000);
    assert.equal(parseTtl("30m"), 1_800_000);
    assert.equal(parseTtl(" 2h "), 7_200_000);
    assert.equal(parseTtl("7d"), 604_800_000);
    for (const bad of ["0h", "2 hours", "h", "-1h", "1.5h", "", 7200, null]) {
      assert.throws(() => parseTtl(bad), (err: unknown) => isCcpError(err) && err.status === 400 && /Invalid ttl/.test(err.message), String(bad));
    }
  });
});

describe("a live copy's WAL (files only)", () => {
  // 1 MiB segments: 0/100000 is the start of segment 1, 0/300100 lies in segment 3.
  const seg = (n: number) => `00000001000000000000000${n}`;
  const point = { startWal: seg(1), stopWal: seg(3), lsn: "0/300100" };
  const setUp = (inPgWal: number[], archived: number[]) => {
    const root = mkdtempSync(path.join(os.tmpdir(), "ccp-gather-wal-"));
    const dirs = { pgWal: path.join(root, "parent-pg_wal"), archive: path.join(root, "archive"), target: path.join(root, "copy") };
    for (const d of [dirs.pgWal, dirs.archive, path.join(dirs.target, "pg_wal")]) mkdirSync(d, { recursive: true });
    for (const n of inPgWal) writeFileSync(path.join(dirs.pgWal, seg(n)), Buffer.alloc(1 << 20, n));
    for (const n of archived) writeFileSync(path.join(dirs.archive, seg(n)), Buffer.alloc(1 << 20, n));
    writeFileSync(path.join(dirs.pgWal, "00000001.history"), "");
    // Past the stop point: preallocated or recycled, not the copy's.
    writeFileSync(path.join(dirs.pgWal, seg(4)), Buffer.alloc(1 << 20, 4));
    return { ...dirs, dispose: () => rmSync(root, { recursive: true, force: true }) };
  };

  it("a branch from now whose WAL a checkpoint recycled during the copy takes that segment from the archive, and replays from pg_wal alone", async () => {
    const d = setUp([1, 3], [1, 2, 3]);
    try {
      assert.equal(await gatherWal(d.pgWal, d.archive, d.target, undefined, point), true);
      const got = readdirSync(path.join(d.target, "pg_wal")).sort();
      assert.deepEqual(got, ["00000001.history", seg(1), seg(2), seg(3)]);
      for (const n of [1, 2, 3]) assert.equal(readFileSync(path.join(d.target, "pg_wal", seg(n)))[0], n);
      assert.equal(existsSync(path.join(d.target, "standby.signal")), true);
      assert.equal(existsSync(path.join(d.target, "recovery.signal")), false);
    } finally {
      d.dispose();
    }
  });

  it("a segment in neither the parent's pg_wal nor its archive leaves the first start to archive recovery", async () => {
    const d = setUp([1, 3], [1, 3]);
    try {
      assert.equal(await gatherWal(d.pgWal, d.archive, d.target, undefined, point), false);
      assert.equal(existsSync(path.join(d.target, "recovery.signal")), true);
      assert.equal(existsSync(path.join(d.target, "standby.signal")), false);
    } finally {
      d.dispose();
    }
  });
});
