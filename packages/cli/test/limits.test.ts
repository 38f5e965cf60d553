import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { runCcp, TestCcpd } from "./helpers.js";

const MiB = 1024 * 1024;

interface LimitView {
  name: string;
  limit: number | null;
  source: string;
  enforced: boolean;
}

describe("ccp db create --memory …, ccp db limits, ccp db info and ccp server status", () => {
  const ccpd = new TestCcpd();
  let project: string;

  before(async () => {
    await ccpd.start(["--warm-pool", "1", "--backup-at", "off", "--suspend-after", "never"]);
    project = path.join(ccpd.root, "project");
    mkdirSync(project);
  });
  after(() => ccpd.dispose());

  it("create with limits; info shows every limit next to its usage", async () => {
    const r = await ccpd.ccp(["db", "create", "--name", "capped", "--memory", "512MiB", "--cpu", "0.5", "--storage", "2GiB", "--connections", "50", "--json"], { cwd: project });
    assert.equal(r.code, 0, r.stderr);
    const info = await ccpd.ccp(["db", "info", "capped", "--json"]);
    assert.equal(info.code, 0, info.stderr);
    const limits = (JSON.parse(info.stdout) as { database: { limits: LimitView[] } }).database.limits;
    const by = Object.fromEntries(limits.map((l) => [l.name, l]));
    assert.equal(by["memory"]?.limit, 512 * MiB);
    assert.equal(by["cpu"]?.limit, 0.5);
    assert.equal(by["storage"]?.limit, 2048 * MiB);
    assert.equal(by["connections"]?.limit, 50);
    const text = await ccpd.ccp(["db", "info", "capped"]);
    assert.match(text.stdout, /memory[\s│]+512MiB/);
    assert.match(text.stdout, /storage[\s│]+2GiB[\s│]+\d+(\.\d+)?MiB[\s│]+database/);
  });

  it("bad limits exit 2 with what is wrong, before anything is created", async () => {
    for (const args of [
      ["--memory", "512"],
      ["--memory", "1MiB"],
      ["--cpu", "0"],
      ["--connections", "500"],
    ]) {
      const r = await ccpd.ccp(["db", "create", "--name", "refused", ...args], { cwd: project });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /memory|cpu|connections/);
    }
    // A rule only the server knows (pids for these connections): still exit 2, nothing created.
    const r = await ccpd.ccp(["db", "create", "--name", "refused", "--pids", "40"], { cwd: project });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /pids 40 is too few/);
    const list = await ccpd.ccp(["db", "list", "--json"]);
    assert.ok(!list.stdout.includes("refused"));
  });

  it("db limits: without flags shows them; with flags says what is live and what waits; default goes back", async () => {
    const shown = await ccpd.ccp(["db", "limits", "capped"]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /LIMIT[\s│]+VALUE[\s│]+USAGE[\s│]+SOURCE[\s│]+ENFORCED/);
    const changed = await ccpd.ccp(["db", "limits", "capped", "--connections", "20", "--storage", "4GiB"]);
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stdout + changed.stderr, /In force now\s+storage, connections/);
    const lowered = await ccpd.ccp(["db", "limits", "capped", "--memory", "256MiB"]);
    assert.equal(lowered.code, 5, lowered.stderr);
    assert.match(lowered.stderr, /needs a restart/);
    const restarted = await ccpd.ccp(["db", "limits", "capped", "--memory", "256MiB", "--restart", "--json"]);
    assert.equal(restarted.code, 0, restarted.stderr);
    assert.deepEqual((JSON.parse(restarted.stdout) as { live: string[]; restarted: boolean }).live, ["memory"]);
    const back = await ccpd.ccp(["db", "limits", "capped", "--connections", "default", "--json"]);
    const conn = (JSON.parse(back.stdout) as { database: { limits: LimitView[] } }).database.limits.find((l) => l.name === "connections");
    assert.equal(conn?.source, "default");
  });

  it("server status shows the default limits and which isolation is in force", async () => {
    const r = await ccpd.ccp(["server", "status", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { default_limits: Record<string, number>; isolation: { name: string; enforced: boolean }[] };
    assert.equal(s.default_limits["connections"], 90);
    for (const name of ["memory", "cpu", "pids", "storage", "connections"]) assert.ok(s.isolation.some((f) => f.name === name), name);
    const text = await ccpd.ccp(["server", "status"]);
    assert.match(text.stdout, /ISOLATION[\s│]+IN FORCE/);
    assert.match(text.stdout, /Default limits\s+memory /);
  });

  it("server start refuses a bad --default-<limit> with exit 2, before starting", async () => {
    const r = await runCcp(["server", "start", "--port", "0", "--wire-port", "0", "--data-dir", path.join(ccpd.root, "never"), "--default-memory", "1MiB"], { env: ccpd.env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /memory 1MiB is too small: the minimum is 128MiB/);
  });
});
