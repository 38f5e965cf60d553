import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { isCcpError, parseLevel, parseSince } from "../../src/index.js";
import { pruneLogs } from "../../src/runtime/process/process-driver.js";

describe("ccp db logs: --since and --level", () => {
  const now = Date.parse("2026-12-01T12:00:00Z");

  it("reads durations back from now, and RFC 3339 instants", () => {
    assert.equal(parseSince("30s", now).toISOString(), "2026-12-01T11:59:30.000Z");
    assert.equal(parseSince("15m", now).toISOString(), "2026-12-01T11:45:00.000Z");
    assert.equal(parseSince("2h", now).toISOString(), "2026-12-01T10:00:00.000Z");
    assert.equal(parseSince("7d", now).toISOString(), "2026-11-24T12:00:00.000Z");
    assert.equal(parseSince("2026-11-30T08:00:00+01:00", now).toISOString(), "2026-11-30T07:00:00.000Z");
  });

  it("refuses anything else with an invalid_request that says what to write", () => {
    for (const bad of ["", "15", "15 m", "-5m", "1w", "yesterday", "2026-13-45T00:00:00Z"]) {
      assert.throws(() => parseSince(bad, now), (err: unknown) => isCcpError(err) && err.code === "invalid_request" && /15m/.test(err.hint ?? ""), bad);
    }
  });

  it("knows Postgres's levels, case-insensitively, and refuses others", () => {
    assert.equal(parseLevel("WARNING"), "warning");
    assert.equal(parseLevel("log"), "log");
    assert.throws(() => parseLevel("warn"), (err: unknown) => isCcpError(err) && err.code === "invalid_request");
  });
});

describe("instance log retention (pruneLogs)", () => {
  function dirWith(files: { name: string; bytes: number; ageDays: number }[], now: number): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), "ccp-logs-"));
    for (const f of files) {
      const p = path.join(dir, f.name);
      writeFileSync(p, "x".repeat(f.bytes));
      const t = (now - f.ageDays * 86_400_000) / 1000;
      utimesSync(p, t, t);
    }
    return dir;
  }
  const now = Date.parse("2026-12-01T12:00:00Z");

  it("drops the oldest files beyond the size limit and files past the age limit, never the newest", () => {
    const dir = dirWith(
      [
        { name: "postgresql-20261120-000000.json", bytes: 10, ageDays: 11 },
        { name: "postgresql-20261129-000000.json", bytes: 400, ageDays: 2 },
        { name: "postgresql-20261130-000000.json", bytes: 400, ageDays: 1 },
        { name: "postgresql-20261201-000000.json", bytes: 400, ageDays: 0 },
        { name: "unrelated.txt", bytes: 5000, ageDays: 30 },
      ],
      now,
    );
    try {
      pruneLogs(dir, { maxBytes: 1000, maxAgeDays: 7 }, now);
      assert.deepEqual(readdirSync(dir).sort(), ["postgresql-20261130-000000.json", "postgresql-20261201-000000.json", "unrelated.txt"]);
      // A single file bigger than the limit is the one Postgres writes: it stays.
      pruneLogs(dir, { maxBytes: 10, maxAgeDays: 0 }, now + 86_400_000 * 30);
      assert.deepEqual(readdirSync(dir).sort(), ["postgresql-20261201-000000.json", "unrelated.txt"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("does nothing when the directory does not exist yet", () => {
    assert.doesNotThrow(() => pruneLogs(path.join(os.tmpdir(), "ccp-no-such-log-dir")));
  });
});
