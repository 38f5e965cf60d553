import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { CCP_BIN, TestCcpd } from "../helpers.js";

/**
 * Issue 13, item 6: `ccp db list | head -1` crashed with an unhandled EPIPE
 * stack trace. A command whose reader has gone away exits quietly, as Unix tools do.
 */
describe("regression: ccp db list into a closed pipe crashes with EPIPE", () => {
  const ccpd = new TestCcpd();
  let project: string;

  before(async () => {
    await ccpd.start();
    project = path.join(ccpd.root, "project");
    mkdirSync(project);
    for (const name of ["pipe-a", "pipe-b", "pipe-c"]) {
      const r = await ccpd.ccp(["db", "create", "--name", name], { cwd: project });
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => ccpd.dispose());

  /** `ccp ARGS | true`: the reader exits before ccp writes (ccp first asks ccpd). */
  function intoClosedPipe(args: string[]): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve, reject) => {
      const quoted = [process.execPath, CCP_BIN, ...args].map((a) => `'${a}'`).join(" ");
      const child = spawn("bash", ["-c", `set -o pipefail; ${quoted} | true; exit \${PIPESTATUS[0]}`], {
        env: { ...ccpd.env, NO_COLOR: "1" },
        cwd: project,
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stderr }));
    });
  }

  for (const args of [["db", "list"], ["db", "list", "--json"], ["db", "info", "pipe-a"], ["--help"]]) {
    it(`ccp ${args.join(" ")} | true exits 0 with nothing on stderr`, async () => {
      const r = await intoClosedPipe(args);
      assert.doesNotMatch(r.stderr, /EPIPE|Error|at /, r.stderr);
      assert.equal(r.code, 0, r.stderr);
    });
  }
});
