import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { TestCcpd, tempProject, type RunResult } from "./helpers.js";

const BACKUP_TIME = /\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/;

interface Project {
  readonly dir: string;
  readonly id: string;
}

interface Backup {
  readonly id: string;
  readonly database_id: string;
  readonly kind: string;
  readonly created_at: string;
}

/** `2026-04-12T14:22:05.123Z` → `2026-04-12 14:22 UTC`. */
const minuteOf = (iso: string) => `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;

function ok(r: RunResult): RunResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

describe("ccp db backup / ccp db restore against a real ccpd", () => {
  const ccpd = new TestCcpd();
  let app: Project;

  const ccp = (args: string[], options: { cwd?: string; input?: string } = {}) => ccpd.ccp(args, options);

  /** A database created with `ccp db create` in its own project directory. */
  async function project(name: string): Promise<Project> {
    const dir = tempProject(ccpd.root, `${name}-`);
    const r = ok(await ccp(["db", "create", "--name", name, "--json"], { cwd: dir }));
    const id = (JSON.parse(r.stdout) as { database: { id: string } }).database.id;
    ok(await ccp(["db", "exec", "CREATE TABLE items (batch int, n int)"], { cwd: dir }));
    return { dir, id };
  }

  const insertBatch = async (p: Project, batch: number) =>
    ok(await ccp(["db", "exec", `INSERT INTO items SELECT ${batch}, g FROM generate_series(1, 10) g`], { cwd: p.dir }));

  /** The batches in `items`, through `ccp db exec` (project credentials, or --db-id/--token). */
  async function batches(cwd: string, target: string[] = []): Promise<number[]> {
    const r = ok(await ccp(["db", "exec", "--json", ...target, "SELECT batch, count(*)::int AS n FROM items GROUP BY batch ORDER BY batch"], { cwd }));
    const rows = (JSON.parse(r.stdout) as { rows: { batch: number; n: number }[] }).rows;
    for (const row of rows) assert.equal(row.n, 10, `batch ${row.batch} is incomplete: ${JSON.stringify(rows)}`);
    return rows.map((row) => row.batch);
  }

  async function createBackup(p: Project): Promise<Backup> {
    return (JSON.parse(ok(await ccp(["db", "backup", "create", "--json"], { cwd: p.dir })).stdout) as { backup: Backup }).backup;
  }

  before(async () => {
    // No scheduled backups behind the tests' back.
    await ccpd.start(["--backup-at", "off"]);
    app = await project("backed-app");
  });
  after(() => ccpd.dispose());

  it("needs a project directory or --db-id (usage error, exit 2)", async () => {
    const empty = tempProject(ccpd.root, "empty-");
    for (const args of [["db", "backup", "list"], ["db", "backup", "create"], ["db", "backup", "restore", "bkp-00000000", "-y"]]) {
      const r = await ccp(args, { cwd: empty });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /no --db-id, and no \.cluster\/config\.json here/);
      assert.match(r.stderr, /Run it in the project directory, or pass --db-id <id>/);
    }
  });

  it("says how to take a backup when there is none yet", async () => {
    const r = ok(await ccp(["db", "backup", "list"], { cwd: app.dir }));
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /No backups yet\. Take one now with `ccp db backup create`/);
    const json = ok(await ccp(["db", "backup", "ls", "--json", "--db-id", app.id]));
    assert.deepEqual(JSON.parse(json.stdout), { backups: [] });
  });

  let first: Backup;

  it("creates a backup (seed 000's output) and lists it, with ls as an alias", async () => {
    await insertBatch(app, 1);
    const r = ok(await ccp(["db", "backup", "create"], { cwd: app.dir }));
    const m = /^✓ Backup created\n\n {2}ID {7}(bkp-[0-9a-f]{8})\n {2}Created {2}(.+)\n$/.exec(r.stdout);
    assert.ok(m, `unexpected output:\n${r.stdout}`);
    const id = m[1] as string;
    assert.match(m[2] as string, BACKUP_TIME);

    const json = JSON.parse(ok(await ccp(["db", "backup", "list", "--json"], { cwd: app.dir })).stdout) as { backups: Backup[] };
    assert.equal(json.backups.length, 1);
    first = json.backups[0] as Backup;
    assert.equal(first.id, id);
    assert.equal(first.database_id, app.id);
    assert.equal(first.kind, "manual");
    assert.equal(m[2], minuteOf(first.created_at));

    for (const verb of ["list", "ls"]) {
      const list = ok(await ccp(["db", "backup", verb], { cwd: app.dir }));
      assert.equal(list.stdout, `• ${id} manual ${minuteOf(first.created_at)}\n`);
    }
  });

  it("lists newest first, columns aligned", async () => {
    const second = await createBackup(app);
    const list = ok(await ccp(["db", "backup", "list", "--db-id", app.id]));
    assert.equal(list.stdout, `• ${second.id} manual ${minuteOf(second.created_at)}\n• ${first.id} manual ${minuteOf(first.created_at)}\n`);
    ok(await ccp(["db", "backup", "rm", second.id], { cwd: app.dir }));
  });

  it("restore asks first; declined exits 7 and changes nothing", async () => {
    await insertBatch(app, 2);
    const r = await ccp(["db", "backup", "restore", first.id], { cwd: app.dir, input: "n\n" });
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, new RegExp(`Restore database ${app.id} from ${first.id}\\? This will overwrite current data\\. \\(y/N\\)`));
    assert.match(r.stderr, /Not restored/);
    assert.equal(r.stdout, "");
    assert.deepEqual(await batches(app.dir), [1, 2]);
  });

  it("restore -y brings the data back as it was at backup time; the project's token keeps working", async () => {
    const r = ok(await ccp(["db", "backup", "restore", first.id, "-y"], { cwd: app.dir }));
    assert.equal(r.stdout, `✓ Restored database ${app.id} from ${first.id}\n`);
    // `ccp db exec` uses the token saved in .cluster/config.json: id, host and token survive.
    assert.deepEqual(await batches(app.dir), [1]);
    // Answering yes at the prompt does the same.
    await insertBatch(app, 3);
    ok(await ccp(["db", "backup", "restore", first.id, "--db-id", app.id], { cwd: app.dir, input: "y\n" }));
    assert.deepEqual(await batches(app.dir), [1]);
  });

  it("verifies a backup: every file checked, Postgres started on it", async () => {
    const r = ok(await ccp(["db", "backup", "verify", first.id], { cwd: app.dir }));
    assert.match(r.stdout, new RegExp(`^✓ Backup ${first.id} verified: \\d+ files, [\\d.]+ MiB, Postgres started and answered\\n$`));
    const json = JSON.parse(ok(await ccp(["db", "backup", "verify", first.id, "--json"], { cwd: app.dir })).stdout) as { backup: Backup; files: number; bytes: number };
    assert.equal(json.backup.id, first.id);
    assert.ok(json.files > 100 && json.bytes > 1_000_000, JSON.stringify(json));
  });

  it("a corrupt backup fails verify and restore with ccpd's message; the data stays", async () => {
    const bad = await createBackup(app);
    const filesDir = path.join(ccpd.dataDir, "backups", app.id, "base", bad.id, "files");
    // The largest packed file of the default database: flip bytes in its middle.
    const packed = (readdirSync(filesDir, { recursive: true }) as string[])
      .filter((f) => f.endsWith(".lz4") || f.endsWith(".gz"))
      .map((f) => path.join(filesDir, f))
      .sort((a, b) => statSync(b).size - statSync(a).size)[0] as string;
    const bytes = readFileSync(packed);
    bytes.fill(0x55, Math.floor(bytes.length / 2), Math.floor(bytes.length / 2) + 64);
    writeFileSync(packed, bytes);

    const verify = await ccp(["db", "backup", "verify", bad.id], { cwd: app.dir });
    assert.equal(verify.code, 5, verify.stderr);
    assert.match(verify.stderr, new RegExp(`✗ Backup ${bad.id} does not match its manifest`));
    const restore = await ccp(["db", "backup", "restore", bad.id, "-y"], { cwd: app.dir });
    assert.equal(restore.code, 5, restore.stderr);
    assert.deepEqual(await batches(app.dir), [1]);
    ok(await ccp(["db", "backup", "delete", bad.id], { cwd: app.dir }));
  });

  it("refuses unknown backups and databases", async () => {
    const unknown = await ccp(["db", "backup", "restore", "bkp-00000000", "-y"], { cwd: app.dir });
    assert.equal(unknown.code, 3, unknown.stderr);
    assert.match(unknown.stderr, new RegExp(`No backup bkp-00000000 of database ${app.id}`));
    const malformed = await ccp(["db", "backup", "verify", "nope"], { cwd: app.dir });
    assert.equal(malformed.code, 2, malformed.stderr);
    assert.match(malformed.stderr, /"nope" is not a backup id/);
    const noDb = await ccp(["db", "backup", "list", "--db-id", "db-000000000000"], { cwd: app.dir });
    assert.equal(noDb.code, 3, noDb.stderr);
    assert.match(noDb.stderr, /No database with id or name "db-000000000000"/);
    const noDbCreate = await ccp(["db", "backup", "create", "--db-id", "no-such-db"], { cwd: app.dir });
    assert.equal(noDbCreate.code, 3, noDbCreate.stderr);
  });

  describe("point-in-time restore (ccp db restore)", () => {
    let src: Project;
    let between: string;
    let beforeBackup: string;

    before(async () => {
      src = await project("pitr-src");
      beforeBackup = new Date().toISOString();
      await sleep(50);
      await createBackup(src);
      await insertBatch(src, 1);
      // Distinct instants on either side of `between`, whatever the clocks' resolution.
      await sleep(500);
      between = new Date().toISOString();
      await sleep(500);
      await insertBatch(src, 2);
    });

    it("restores into a NEW database holding exactly what was committed before the instant; source and project untouched", async () => {
      const configBefore = readFileSync(path.join(src.dir, ".cluster", "config.json"), "utf8");
      const r = ok(await ccp(["db", "restore", "pitr-src", "-t", between, "-n", "pitr-copy", "--json"], { cwd: src.dir }));
      const out = JSON.parse(r.stdout) as { source: { id: string }; time: string; database: { id: string; name: string; status: string }; token: string; database_url: string };
      assert.equal(out.source.id, src.id);
      assert.equal(out.time, between);
      assert.equal(out.database.name, "pitr-copy");
      assert.equal(out.database.status, "ready");
      assert.notEqual(out.database.id, src.id);
      assert.match(out.database_url, /^postgresql:\/\//);

      assert.deepEqual(await batches(src.dir, ["--db-id", out.database.id, "--token", out.token]), [1]);
      assert.deepEqual(await batches(src.dir), [1, 2]);
      assert.equal(readFileSync(path.join(src.dir, ".cluster", "config.json"), "utf8"), configBefore);
    });

    it("prints the new database's ID, Host, Token and DATABASE_URL once, and how to switch to it", async () => {
      const r = ok(await ccp(["db", "restore", src.id, "-t", between, "-n", "pitr-copy-2"], { cwd: src.dir }));
      const lines = r.stdout.split("\n");
      assert.equal(lines[0], `✓ Restored ${src.id} to ${between} as new database pitr-copy-2`);
      const id = /^ {2}ID {12}(db-[0-9a-f]{12})$/m.exec(r.stdout)?.[1];
      const token = /^ {2}Token {9}([0-9a-f]{64})$/m.exec(r.stdout)?.[1];
      assert.ok(id && token, r.stdout);
      assert.match(r.stdout, new RegExp(`^ {2}Host {10}${id}\\.localhost$`, "m"));
      assert.match(r.stdout, /^ {2}DATABASE_URL {2}postgresql:\/\/\S+$/m);
      assert.match(r.stderr, /ccp db use pitr-copy-2/);
      assert.deepEqual(await batches(src.dir, ["--db-id", id, "--token", token]), [1]);
    });

    it("refuses bad instants and taken names with ccpd's message", async () => {
      const cases: [string[], number, RegExp][] = [
        [["-t", "yesterday", "-n", "never-made"], 2, /Invalid timestamp "yesterday": use RFC 3339/],
        [["-t", "2026-04-12 14:22", "-n", "never-made"], 2, /Invalid timestamp/],
        [["-t", new Date(Date.now() + 3600_000).toISOString(), "-n", "never-made"], 2, /is in the future/],
        [["-t", beforeBackup, "-n", "never-made"], 2, /outside the restorable window of db-[0-9a-f]{12}: the earliest restorable instant is /],
        [["-t", between, "-n", "pitr-copy"], 5, /A database named "pitr-copy" already exists/],
        [["-t", between, "-n", "Bad Name"], 2, /.+/],
      ];
      for (const [args, code, message] of cases) {
        const r = await ccp(["db", "restore", "pitr-src", ...args], { cwd: src.dir });
        assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.equal(r.stdout, "");
      }
      const unknown = await ccp(["db", "restore", "no-such-db", "-t", between, "-n", "never-made"]);
      assert.equal(unknown.code, 3, unknown.stderr);
      const list = JSON.parse(ok(await ccp(["db", "list", "--json"])).stdout) as { databases: { name: string }[] };
      assert.equal(list.databases.some((d) => d.name === "never-made"), false);
    });

    it("reports a source with no backup yet", async () => {
      const fresh = await project("no-backups");
      const r = await ccp(["db", "restore", fresh.id, "-t", new Date().toISOString(), "-n", "never-made"]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /has no backup yet/);
    });
  });

  it("deletes a backup (delete and rm); the list is then empty", async () => {
    const extra = await createBackup(app);
    const r = ok(await ccp(["db", "backup", "delete", first.id], { cwd: app.dir }));
    assert.equal(r.stdout, `✓ Deleted backup ${first.id}\n`);
    ok(await ccp(["db", "backup", "rm", extra.id, "--db-id", app.id]));
    const list = ok(await ccp(["db", "backup", "list"], { cwd: app.dir }));
    assert.equal(list.stdout, "");
    assert.match(list.stderr, /No backups yet/);
    const again = await ccp(["db", "backup", "delete", first.id], { cwd: app.dir });
    assert.equal(again.code, 3, again.stderr);
  });
});
