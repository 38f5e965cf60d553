import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { resolvePgBinaries } from "@ccp/server";
import { TestCcpd, tempProject, waitFor, type RunResult } from "./helpers.js";

function ok(r: RunResult): RunResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** The unprivileged user ccpd runs instances as (Postgres refuses root); absent when the tests do not run as root. */
function osUser(name: string): { uid: number; gid: number } | undefined {
  try {
    return { uid: Number(execFileSync("id", ["-u", name], { encoding: "utf8" })), gid: Number(execFileSync("id", ["-g", name], { encoding: "utf8" })) };
  } catch {
    return undefined;
  }
}

describe("ccp db backup download: an archive plain PostgreSQL starts from", () => {
  const ccpd = new TestCcpd();
  let dir: string;
  let id: string;
  let backupId: string;
  let plain: ChildProcess | undefined;

  before(async () => {
    await ccpd.start(["--backup-at", "off"]);
    dir = tempProject(ccpd.root, "dl-");
    id = (JSON.parse(ok(await ccpd.ccp(["db", "create", "--name", "take-away", "--json"], { cwd: dir })).stdout) as { database: { id: string } }).database.id;
    ok(await ccpd.ccp(["db", "exec", "CREATE TABLE items AS SELECT g AS n FROM generate_series(1, 5000) g"], { cwd: dir }));
    backupId = (JSON.parse(ok(await ccpd.ccp(["db", "backup", "create", "--json"], { cwd: dir })).stdout) as { backup: { id: string } }).backup.id;
  });
  after(async () => {
    plain?.kill("SIGINT");
    await ccpd.dispose();
  });

  it("downloads one tar that the plain postgres binary starts from, with the backup's rows (README steps)", async () => {
    const file = path.join(ccpd.root, "backup.tar");
    const r = ok(await ccpd.ccp(["db", "backup", "download", backupId, "-o", file], { cwd: dir }));
    assert.match(r.stdout, new RegExp(`✓ Downloaded ${backupId} to ${file.replaceAll("/", "\\/")} \\(.+ MiB tar\\)`));
    assert.equal(existsSync(`${file}.partial`), false);

    // The README's steps: extract, own it, a pg_hba.conf of your own, start.
    const data = path.join(ccpd.root, "plain-data");
    const sock = path.join(ccpd.root, "plain-run");
    mkdirSync(data, { mode: 0o700 });
    mkdirSync(sock, { mode: 0o700 });
    execFileSync("tar", ["-xf", file, "-C", data]);
    writeFileSync(path.join(data, "pg_hba.conf"), "local all all trust\n");
    const user = process.getuid?.() === 0 ? osUser("ccp") : undefined;
    if (user) execFileSync("chown", ["-R", `${user.uid}:${user.gid}`, data, sock]);
    const bin = resolvePgBinaries();
    plain = spawn(bin.postgres, ["-D", data, "-k", sock, "-c", "listen_addresses=", "-p", "5432"], {
      stdio: ["ignore", "pipe", "pipe"],
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    let log = "";
    plain.stderr?.on("data", (d: Buffer) => (log += d.toString()));
    const client = await waitFor(`plain postgres to accept connections (log so far: ${log})`, async () => {
      const c = new pg.Client({ host: sock, port: 5432, user: "clusterbase", database: "default" });
      await c.connect();
      return c;
    }, 60_000);
    try {
      const { rows } = await client.query<{ c: number; s: string }>("SELECT count(*)::int AS c, sum(n)::text AS s FROM items");
      assert.deepEqual(rows[0], { c: 5000, s: String((5000 * 5001) / 2) });
    } finally {
      await client.end();
    }
  });

  it("a backup file that no longer matches its manifest cuts the download: non-zero exit, nothing at FILE", async () => {
    const filesDir = path.join(ccpd.dataDir, "backups", id, "base", backupId, "files");
    const manifest = JSON.parse(readFileSync(path.join(filesDir, "..", "manifest.json"), "utf8")) as { files: { path: string; size: number }[] };
    // The biggest file, so the cut comes after bytes were already sent.
    const victim = [...manifest.files].sort((a, b) => b.size - a.size)[0] as { path: string; size: number };
    // Bytes flipped in the middle of its stored (compressed) form.
    const stored = path.join(filesDir, `${victim.path}.lz4`);
    const bytes = readFileSync(stored);
    bytes.fill(0x55, Math.floor(bytes.length / 2), Math.floor(bytes.length / 2) + 64);
    writeFileSync(stored, bytes);
    const file = path.join(ccpd.root, "bad.tar");
    const r = await ccpd.ccp(["db", "backup", "download", backupId, "-o", file], { cwd: dir });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, new RegExp(`Download of ${backupId} stopped before the end`));
    assert.equal(existsSync(file), false);
    assert.equal(readdirSync(ccpd.root).some((n) => n.startsWith("bad.tar")), false);
  });

  it("an unknown backup id is a clear error", async () => {
    const r = await ccpd.ccp(["db", "backup", "download", "bkp-00000000", "-o", path.join(ccpd.root, "x.tar")], { cwd: dir });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /No backup bkp-00000000/);
  });
});
