import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { descendsFrom, postmasters, TestCcpd, waitFor } from "./helpers.js";


/** No daily backup: it would hold the database awake (a lease) while these tests suspend it. */
const ARGS = ["--suspend-after", "never", "--warm-pool", "1", "--backup-at", "off"];

describe("ccp db suspend / wake / update, and a ccpd killed mid-wake or mid-suspend", () => {
  const ccpd = new TestCcpd();
  let project: string;
  let id: string;

  before(async () => {
    await ccpd.start(ARGS);
    project = path.join(ccpd.root, "project");
    mkdirSync(project);
    const r = await ccpd.ccp(["db", "create", "--name", "sleeper", "--suspend-after", "10m", "--json"], { cwd: project });
    assert.equal(r.code, 0, r.stderr);
    const created = JSON.parse(r.stdout) as { database: { id: string; suspend_after: string } };
    assert.equal(created.database.suspend_after, "10m");
    id = created.database.id;
  });
  after(() => ccpd.dispose());

  const info = async () => {
    const r = await ccpd.ccp(["db", "info", id, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { database: { status: string; suspend_after: string; last_active_at: string | null } }).database;
  };
  const dataDir = () => path.join(ccpd.instanceDir(id), "data");
  /** Same HTTP port again: the project's .cluster/config.json names it. */
  const restart = () => ccpd.start([...ARGS, "--port", new URL(ccpd.url).port]);

  it("suspend stops the server and list/info/status show it; exec wakes it", async () => {
    const s = await ccpd.ccp(["db", "suspend", id]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /Suspended sleeper/);
    assert.equal((await info()).status, "suspended");
    assert.deepEqual(postmasters(dataDir()), []);
    const list = await ccpd.ccp(["db", "list"]);
    assert.match(list.stdout, /sleeper\s+suspended/);
    assert.match(list.stdout, /last active /);
    const text = await ccpd.ccp(["db", "info", id]);
    assert.match(text.stdout, /Suspends after\s+10m idle/);

    const exec = await ccpd.ccp(["db", "exec", "SELECT 6 * 7 AS answer"], { cwd: project });
    assert.equal(exec.code, 0, exec.stderr);
    assert.match(exec.stdout, /42/);
    assert.equal((await info()).status, "ready");
    assert.equal(postmasters(dataDir()).length, 1);
  });

  it("wake starts a suspended database; status wakes it too and shows the last activity", async () => {
    assert.equal((await ccpd.ccp(["db", "suspend", id])).code, 0);
    const w = await ccpd.ccp(["db", "wake", id]);
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stdout, /is ready/);
    assert.equal((await ccpd.ccp(["db", "suspend", id])).code, 0);
    const st = await ccpd.ccp(["db", "status", id]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /State\s+ready/);
    assert.match(st.stdout, /Last active\s+\d{4}-/);
  });

  it("update changes the suspend timeout; bad durations are refused before and by ccpd", async () => {
    const u = await ccpd.ccp(["db", "update", id, "--suspend-after", "never", "--json"]);
    assert.equal(u.code, 0, u.stderr);
    assert.equal((JSON.parse(u.stdout) as { database: { suspend_after: string } }).database.suspend_after, "never");
    const back = await ccpd.ccp(["db", "update", id, "--suspend-after", "default", "--json"]);
    assert.equal((JSON.parse(back.stdout) as { database: { suspend_after: string } }).database.suspend_after, "never", "the server's default here is never");
    const bad = await ccpd.ccp(["db", "update", id, "--suspend-after", "soon"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /30s, 5m, 2h/);
    const api = await fetch(`${ccpd.url}/v1/databases/${id}`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${ccpd.adminKey()}`, "content-type": "application/json" },
      body: JSON.stringify({ suspend_after: "5 minutes" }),
    });
    assert.equal(api.status, 400);
    const badCreate = await ccpd.ccp(["db", "create", "--name", "never-made", "--suspend-after", "0s"]);
    assert.notEqual(badCreate.code, 0);
  });

  it("a ccpd killed mid-wake reconciles: the catalog's state, no orphan postgres", async () => {
    assert.equal((await ccpd.ccp(["db", "suspend", id])).code, 0);
    const waking = ccpd.ccp(["db", "wake", id]);
    // Kill ccpd the moment the woken postmaster exists (before it is marked ready, most of the time).
    await waitFor("the wake to spawn postgres", () => postmasters(dataDir()).length > 0 || undefined, 60_000);
    await ccpd.stop("SIGKILL");
    await waking;
    await restart();
    const status = (await info()).status;
    const running = postmasters(dataDir());
    if (status === "suspended") assert.deepEqual(running, [], "suspended: no postgres left running");
    else {
      assert.equal(status, "ready");
      assert.equal(running.length, 1);
      assert.ok(descendsFrom(running[0]?.pid, ccpd.pid), "the running postgres is the new ccpd's (its child, or its sandbox launcher's), not an orphan");
    }
    const exec = await ccpd.ccp(["db", "exec", "SELECT 1 AS one"], { cwd: project });
    assert.equal(exec.code, 0, exec.stderr);
  });

  it("a ccpd killed mid-suspend reconciles: the catalog's state, no orphan postgres", async () => {
    const marker = path.join(ccpd.instanceDir(id), "suspended");
    assert.equal(existsSync(marker), false);
    let suspended: { code: number | null; stderr: string } | undefined;
    const suspending = ccpd.ccp(["db", "suspend", id]).then((r) => (suspended = r));
    // The marker is written just before the server is stopped.
    await waitFor("the suspend to begin stopping", () => existsSync(marker) || (suspended && assert.fail(`suspend ended first: ${suspended.stderr}`)) || undefined, 60_000);
    await ccpd.stop("SIGKILL");
    await suspending;
    await restart();
    const status = (await info()).status;
    const running = postmasters(dataDir());
    if (status === "suspended") assert.deepEqual(running, []);
    else {
      assert.equal(status, "ready");
      assert.equal(running.length, 1);
      assert.ok(descendsFrom(running[0]?.pid, ccpd.pid), "the running postmaster is supervised by the new ccpd (its child, or its sandbox launcher's)");
    }
    const exec = await ccpd.ccp(["db", "exec", "SELECT 1 AS one"], { cwd: project });
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal((await info()).status, "ready");
  });
});
