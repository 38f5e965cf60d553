import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { withAdmin } from "../src/databases/admin-connection.js";
import { parseLimits, parseSize } from "../src/databases/limits.js";
import { postgresSettingsFor } from "../src/runtime/limits.js";
import { resolveServerConfig } from "../src/index.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

const MiB = 1024 * 1024;

interface Created {
  database: { id: string };
  token: string;
  database_url: string;
}

interface LimitView {
  name: string;
  limit: number | null;
  source: string;
  usage: number | null;
  enforced: boolean;
  detail: string;
}

describe("limit parsing (units, bounds)", () => {
  const host = { cores: 2, memoryBytes: 8 * 1024 * MiB };

  it("reads binary and SI units, and integers of bytes", () => {
    assert.equal(parseSize("512MiB", "memory"), 512 * MiB);
    assert.equal(parseSize("2GiB", "memory"), 2 * 1024 * MiB);
    assert.equal(parseSize("1.5GB", "memory"), 1.5e9);
    assert.equal(parseSize("100mb", "memory"), 100e6);
    assert.equal(parseSize(1048576, "memory"), MiB);
  });

  it("refuses a size without a unit, a too small one, cpu past the host, connections past 90, unknown names", () => {
    const refused: [unknown, RegExp][] = [
      [{ memory: "512" }, /not a size with a unit/],
      [{ memory: "64MiB" }, /memory 64MiB is too small: the minimum is 128MiB/],
      [{ cpu: 0 }, /cpu 0 is too small/],
      [{ cpu: 3 }, /this host has 2 cores/],
      [{ connections: 0 }, /connections 0 is too small/],
      [{ connections: 91 }, /at most 90 client connections/],
      [{ connections: "many" }, /not a whole number/],
      [{ disk: "1GiB" }, /Unknown limit "disk"/],
      [{ memory: "16GiB" }, /this host has 8GiB of memory/],
    ];
    for (const [input, message] of refused) {
      assert.throws(() => parseLimits(input, host), (err: Error & { status?: number }) => message.test(err.message) && err.status === 400, JSON.stringify(input));
    }
  });

  it("derives Postgres settings from the limits", () => {
    const s = postgresSettingsFor({ memoryBytes: 512 * MiB, connections: 20, cpu: 0.5, storageBytes: 1024 * MiB });
    assert.equal(s["shared_buffers"], "128MB");
    assert.equal(s["max_connections"], "30");
    assert.equal(s["max_parallel_workers_per_gather"], "0");
    assert.equal(s["max_wal_size"], "128MB");
    assert.equal(s["temp_file_limit"], `${512 * 1024}kB`);
  });

  it("server defaults: CCP_DEFAULT_* over the built-in ones; a bad one stops the start with a clear error", () => {
    const config = resolveServerConfig({ dataDir: "/tmp/x" }, { CCP_DEFAULT_MEMORY: "256MiB", CCP_DEFAULT_STORAGE: "none" });
    assert.equal(config.defaultLimits.memoryBytes, 256 * MiB);
    assert.equal(config.defaultLimits.storageBytes, undefined);
    assert.equal(config.defaultLimits.connections, 90);
    assert.throws(() => resolveServerConfig({ dataDir: "/tmp/x" }, { CCP_DEFAULT_MEMORY: "lots" }), /Default limits: Invalid memory "lots"/);
  });
});

describe("limits per database", () => {
  let t: TestServer;
  let admin: Record<string, string>;

  const api = async (method: string, pathname: string, body?: unknown) => {
    const res = await t.http(pathname, { method, headers: body === undefined ? admin : { ...admin, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string; hint?: string } } };
  };
  const sqlAsAdmin = <T extends pg.QueryResultRow>(id: string, sql: string) =>
    withAdmin(t.server.instances.endpoint(id), "default", async (c) => (await c.query<T>(sql)).rows);
  const limitsOf = async (id: string) => ((await api("GET", `/v1/databases/${id}`)).body["database"] as { limits: LimitView[] }).limits;

  before(async () => {
    t = await startTestServer("limits", { warmPool: 1, storageCheckMs: 0 });
    admin = { authorization: `Bearer ${t.adminKey}` };
  });
  after(async () => t?.dispose());

  it("a create with limits: info shows each next to its usage, and Postgres follows them", async () => {
    const res = await api("POST", "/v1/databases", { name: "limited", limits: { memory: "512MiB", cpu: 0.5, storage: "2GiB", connections: 20 } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = (res.body as unknown as Created).database.id;
    const limits = await limitsOf(id);
    const by = Object.fromEntries(limits.map((l) => [l.name, l]));
    assert.deepEqual(by["memory"] && { limit: by["memory"].limit, source: by["memory"].source }, { limit: 512 * MiB, source: "database" });
    assert.equal(by["cpu"]?.limit, 0.5);
    assert.equal(by["storage"]?.limit, 2048 * MiB);
    assert.ok((by["storage"]?.usage ?? 0) > 0, "storage usage is measured");
    assert.equal(by["connections"]?.limit, 20);
    assert.equal(typeof by["connections"]?.usage, "number");
    assert.equal(by["pids"]?.source, "default");
    assert.equal(by["io"]?.source, "none");
    const [settings] = await sqlAsAdmin<{ sb: string; mc: string; conn: number }>(
      id,
      "SELECT current_setting('shared_buffers') AS sb, current_setting('max_connections') AS mc, (SELECT rolconnlimit FROM pg_roles WHERE rolname = 'clusterbase') AS conn",
    );
    assert.deepEqual(settings, { sb: "128MB", mc: "30", conn: 20 });
  });

  it("bad limits on a create: 400 naming what is wrong, and nothing is created", async () => {
    const before = (await api("GET", "/v1/databases")).body["databases"] as unknown[];
    // Instance folders only: the warm pool and spare copies refill beside them in the background.
    const instanceDirs = () => readdirSync(path.join(t.server.config.dataDir, "instances")).filter((n) => n.startsWith("db-")).length;
    const dirs = instanceDirs();
    for (const limits of [{ memory: "512" }, { memory: "1MiB" }, { cpu: 64 }, { connections: 500 }, { pids: 40 }, { disk: "1GiB" }]) {
      const res = await api("POST", "/v1/databases", { name: "never-made", limits });
      assert.equal(res.status, 400, JSON.stringify(limits));
      assert.match(res.body.error?.message ?? "", /memory|cpu|connections|pids|disk|additional/i);
    }
    assert.equal(((await api("GET", "/v1/databases")).body["databases"] as unknown[]).length, before.length);
    assert.equal(instanceDirs(), dirs);
  });

  it("a change says truthfully what is live and what waits for the next start; lowering memory live is refused; restart applies it", async () => {
    const id = ((await api("POST", "/v1/databases", { name: "changing" })).body as unknown as Created).database.id;
    const lower = await api("PATCH", `/v1/databases/${id}/limits`, { limits: { connections: 10, memory: "256MiB" } });
    assert.equal(lower.status, 409, JSON.stringify(lower.body));
    assert.match(lower.body.error?.message ?? "", /needs a restart/);
    assert.equal((await limitsOf(id)).find((l) => l.name === "connections")?.limit, 90, "a refused change changes nothing");

    const change = await api("PATCH", `/v1/databases/${id}/limits`, { limits: { connections: 10, storage: "5GiB" } });
    assert.equal(change.status, 200, JSON.stringify(change.body));
    assert.deepEqual(change.body["changed"], ["storage", "connections"]);
    assert.deepEqual(change.body["live"], ["storage", "connections"]);
    assert.deepEqual(change.body["next_start"], []);
    assert.equal(change.body["settings_next_start"], true);
    const [now] = await sqlAsAdmin<{ mc: string; conn: number; wal: string }>(
      id,
      "SELECT current_setting('max_connections') AS mc, current_setting('max_wal_size') AS wal, (SELECT rolconnlimit FROM pg_roles WHERE rolname = 'clusterbase') AS conn",
    );
    assert.equal(now?.conn, 10, "the role's connection limit is live");
    assert.deepEqual([now?.mc, now?.wal], ["100", "1GB"], "Postgres settings wait for the next start");

    const restarted = await api("PATCH", `/v1/databases/${id}/limits`, { limits: { memory: "384MiB" }, restart: true });
    assert.equal(restarted.status, 200, JSON.stringify(restarted.body));
    assert.equal(restarted.body["restarted"], true);
    assert.deepEqual(restarted.body["live"], ["memory"]);
    assert.equal(restarted.body["settings_next_start"], false);
    assert.deepEqual(restarted.body["next_start"], []);
    const [after] = await sqlAsAdmin<{ sb: string; mc: string }>(id, "SELECT current_setting('shared_buffers') AS sb, current_setting('max_connections') AS mc");
    assert.deepEqual([after?.sb, after?.mc], ["96MB", "20"]);

    // null: back to the server's default.
    const back = await api("PATCH", `/v1/databases/${id}/limits`, { limits: { connections: null } });
    const conn = ((back.body["database"] as { limits: LimitView[] }).limits).find((l) => l.name === "connections");
    assert.equal(conn?.source, "default");
    assert.equal(conn?.limit, 90);

    const bad = await api("PATCH", `/v1/databases/${id}/limits`, { limits: { memory: "12 potatoes" } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error?.message ?? "", /Invalid memory/);
    assert.equal((await limitsOf(id)).find((l) => l.name === "memory")?.limit, 384 * MiB, "a refused change changes nothing");
  });

  it("server status: default limits and the isolation report, matching the driver's", async () => {
    const res = await api("GET", "/v1/server");
    assert.equal(res.status, 200);
    const defaults = res.body["default_limits"] as Record<string, number>;
    assert.equal(defaults["connections"], 90);
    assert.equal(defaults["storage"], 10 * 1024 * MiB);
    const report = res.body["isolation"] as { name: string; enforced: boolean; detail: string }[];
    for (const f of t.server.driver.isolation()) {
      const shown = report.find((r) => r.name === f.name);
      assert.ok(shown, `${f.name} is reported`);
      if (f.name !== "storage") assert.deepEqual(shown, f, `${f.name} is reported as the driver has it`);
      // A hard bound (a filesystem image per database) is reported after the soft quota that acts first.
      else if (f.enforced) assert.ok(shown?.enforced && shown.detail.endsWith(f.detail), `storage: ${shown?.detail}`);
    }
    const storage = report.find((r) => r.name === "storage");
    if (!t.server.driver.isolation().find((f) => f.name === "storage")?.enforced) assert.match(storage?.detail ?? "", /^soft: ccpd/);
  });

  it("over its storage quota A turns read-only with the documented error (HTTP and wire), B is unaffected, and A is writable again after a DROP brings it under", async () => {
    // 160 MiB of data + WAL: the server starts with WAL sized for it (max_wal_size 64MB), so a checkpoint brings a dropped table's WAL back down.
    const limit = 160 * MiB;
    const a = (await api("POST", "/v1/databases", { name: "quota-a", limits: { storage: "160MiB" } })).body as unknown as Created;
    const b = (await api("POST", "/v1/databases", { name: "quota-b" })).body as unknown as Created;
    const gw = async (db: Created, endpoint: string, sql: string) => {
      const res = await t.http(`/v1/databases/${db.database.id}/${endpoint}`, {
        method: "POST",
        headers: { authorization: `Bearer ${db.token}`, "content-type": "application/json" },
        body: JSON.stringify({ sql }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string } } };
    };
    assert.equal((await gw(a, "execute", "CREATE TABLE keep AS SELECT g AS id FROM generate_series(1, 100) g")).status, 200);
    await t.server.quota.check(a.database.id);
    assert.equal(((await api("GET", `/v1/databases/${a.database.id}`)).body["database"] as { read_only?: unknown }).read_only, undefined, "under its limit: writable");
    const fill = await gw(a, "execute", "CREATE TABLE big AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 160000) g");
    assert.equal(fill.status, 200, JSON.stringify(fill.body));
    await t.server.quota.check(a.database.id);

    const info = (await api("GET", `/v1/databases/${a.database.id}`)).body["database"] as { read_only?: { reason: string; message: string } };
    assert.equal(info.read_only?.reason, "storage_quota");

    const refused = await gw(a, "execute", "INSERT INTO keep VALUES (101)");
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.error?.code, "storage_quota_exceeded");
    assert.match(refused.body.error?.message ?? "", /read-only: it uses .* over its storage limit of .*MiB.*DELETE or DROP, then VACUUM/);
    assert.equal(((await gw(a, "query", "SELECT count(*)::int AS n FROM keep")).body["rows"] as { n: number }[])[0]?.n, 100, "reads still work, data intact");
    assert.equal((await gw(b, "execute", "CREATE TABLE fine (x int)")).status, 200, "B is unaffected");

    // Wire: a notice at session start says the same; a write fails read-only.
    const c = new pg.Client({ connectionString: a.database_url });
    const notices: string[] = [];
    c.on("notice", (n) => notices.push(n.message ?? ""));
    await c.connect();
    try {
      await assert.rejects(c.query("INSERT INTO keep VALUES (102)"), (err: Error & { code?: string }) => err.code === "25006");
      assert.ok(notices.some((n) => /storage limit/.test(n)), `a notice names the limit: ${JSON.stringify(notices)}`);
      // The documented way out: writes allowed in this session, free space.
      await c.query("SET default_transaction_read_only = off");
      await c.query("DROP TABLE big");
      await c.query("VACUUM");
    } finally {
      await c.end();
    }
    // The freed table goes at once; the WAL that wrote it goes once archived and recycled by a checkpoint (each check makes one).
    let again: { read_only?: unknown; limits: LimitView[] } | undefined;
    for (const until = Date.now() + 90_000; ; await sleep(500)) {
      await t.server.quota.check(a.database.id);
      again = (await api("GET", `/v1/databases/${a.database.id}`)).body["database"] as { read_only?: unknown; limits: LimitView[] };
      if (again.read_only === undefined || Date.now() > until) break;
    }
    assert.equal(again.read_only, undefined, `writable again (usage ${again.limits.find((l) => l.name === "storage")?.usage} of ${limit})`);
    assert.equal((await gw(a, "execute", "INSERT INTO keep VALUES (101)")).status, 200);
    assert.equal(((await gw(a, "query", "SELECT count(*)::int AS n FROM keep")).body["rows"] as { n: number }[])[0]?.n, 101);
  });
});
