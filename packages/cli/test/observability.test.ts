import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { CCP_BIN, TestCcpd, waitFor } from "./helpers.js";

/** `ccp db logs`, `ccp db insights`, `ccp db status` figures and `ccp server metrics-token`, run as users run them. */
describe("ccp observability commands against a real ccpd", () => {
  const ccpd = new TestCcpd();
  let project: string;
  let id: string;

  before(async () => {
    await ccpd.start();
    project = path.join(ccpd.root, "project");
    mkdirSync(project);
    const r = await ccpd.ccp(["db", "create", "--name", "obs-cli", "--json"], { cwd: project });
    assert.equal(r.code, 0, r.stderr);
    id = (JSON.parse(r.stdout) as { database: { id: string } }).database.id;
  });
  after(() => ccpd.dispose());

  it("ccp db logs --follow shows a statement error within seconds and stops cleanly on Ctrl+C", async () => {
    const child = spawn(process.execPath, [CCP_BIN, "db", "logs", "--follow", "--since", "1s", "--level", "error"], {
      cwd: project,
      env: { ...ccpd.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const mark = `no_such_table_${Date.now()}`;
      // Until the stream is open, an error could land before --since 1s: repeat until it is seen.
      await waitFor(`"${mark}" in ccp db logs --follow (stderr: ${stderr})`, async () => {
        const exec = await ccpd.ccp(["db", "exec", `SELECT * FROM ${mark}`], { cwd: project });
        assert.notEqual(exec.code, 0);
        await new Promise((r) => setTimeout(r, 500));
        return stdout.includes(mark) ? true : undefined;
      }, 15_000);
      assert.match(stdout, new RegExp(`ERROR\\s+\\[clusterbase@default\\] relation "${mark}" does not exist \\(42P01\\)`));
      assert.match(stdout, new RegExp(`statement: SELECT \\* FROM ${mark}`));
    } finally {
      child.kill("SIGINT");
    }
    assert.equal(await exited, 0, stderr);
    assert.equal(stderr, "");
  });

  it("ccp db logs --json prints entries with platform events, and rejects a bad --since before contacting ccpd", async () => {
    const r = await ccpd.ccp(["db", "logs", id, "--since", "1h", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const { entries } = JSON.parse(r.stdout) as { entries: { source: string; event?: string }[] };
    assert.ok(entries.some((e) => e.source === "ccp" && e.event === "created"));
    assert.ok(entries.some((e) => e.source === "postgres"));
    const bad = await ccpd.ccp(["db", "logs", id, "--since", "yesterday"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Cannot read "yesterday" as a time/);
    const level = await ccpd.ccp(["db", "logs", id, "--level", "loud"]);
    assert.equal(level.code, 2);
    assert.match(level.stderr, /Unknown log level "loud"/);
  });

  it("ccp db insights lists a statement after it ran, sorted as asked, and --reset clears them", async () => {
    for (let i = 0; i < 3; i++) assert.equal((await ccpd.ccp(["db", "exec", "SELECT count(*) FROM generate_series(1, 10)"], { cwd: project })).code, 0);
    const r = await ccpd.ccp(["db", "insights", "--sort", "calls", "--json"], { cwd: project });
    assert.equal(r.code, 0, r.stderr);
    const { statements } = JSON.parse(r.stdout) as { statements: { query: string; calls: number }[] };
    const series = statements.find((s) => s.query.includes("generate_series"));
    assert.equal(series?.calls, 3);
    assert.deepEqual(statements.map((s) => s.calls), statements.map((s) => s.calls).sort((x, y) => y - x));
    const text = await ccpd.ccp(["db", "insights", id, "--limit", "5"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /total ms │ mean ms │ calls/);
    assert.match(text.stdout, /generate_series/);
    assert.equal((await ccpd.ccp(["db", "insights", id, "--sort", "fastest"])).code, 2);
    assert.equal((await ccpd.ccp(["db", "insights", id, "--reset"])).code, 0);
    const after = JSON.parse((await ccpd.ccp(["db", "insights", id, "--json"])).stdout) as { statements: { query: string }[] };
    assert.ok(!after.statements.some((s) => s.query.includes("generate_series")));
  });

  it("ccp db status shows the headline figures", async () => {
    const r = await ccpd.ccp(["db", "status", id]);
    assert.equal(r.code, 0, r.stderr);
    for (const label of ["Connections", "TPS \\(1 min\\)", "Cache hit", "Size", "Last backup", "Archive lag"]) assert.match(r.stdout, new RegExp(`^\\s+${label}\\s+\\S`, "m"));
    // The size next to its storage limit: the server's default (10 GiB) applies to a database created without its own.
    assert.match(r.stdout, /^\s+Size\s+\d+(\.\d+)? [kMG]?B of 10 GB$/m);
  });

  it("ccp server metrics-token issues a token that reads /metrics", async () => {
    const r = await ccpd.ccp(["server", "metrics-token", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const { token, metrics_url } = JSON.parse(r.stdout) as { token: string; metrics_url: string };
    const res = await fetch(metrics_url, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.match(await res.text(), new RegExp(`^pg_up\\{database_id="${id}",name="obs-cli"\\} 1$`, "m"));
    // The token is not saved anywhere by the CLI: the user config still holds the admin key only.
    assert.ok(!readFileSync(path.join(ccpd.root, "config", "ccp", "config.json"), "utf8").includes(token));
  });
});
