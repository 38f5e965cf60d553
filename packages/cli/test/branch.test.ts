import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { TestCcpd, tempProject, waitFor, type RunResult } from "./helpers.js";

function ok(r: RunResult): RunResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

describe("ccp db branch against a real ccpd", () => {
  const ccpd = new TestCcpd();
  let dir: string;
  let parentId: string;
  let child: { id: string; token: string };

  const ccp = (args: string[], options: { cwd?: string; input?: string } = {}) => ccpd.ccp(args, options);
  async function batches(target: string[], cwd = dir): Promise<number[]> {
    const r = ok(await ccp(["db", "exec", "--json", ...target, "SELECT DISTINCT batch FROM items ORDER BY batch"], { cwd }));
    return (JSON.parse(r.stdout) as { rows: { batch: number }[] }).rows.map((row) => row.batch);
  }
  const insertBatch = async (target: string[], batch: number) => ok(await ccp(["db", "exec", ...target, `INSERT INTO items SELECT ${batch}, g FROM generate_series(1, 10) g`], { cwd: dir }));

  before(async () => {
    await ccpd.start(["--backup-at", "off"]);
    dir = tempProject(ccpd.root, "app-");
    parentId = (JSON.parse(ok(await ccp(["db", "create", "--name", "main-app", "--json"], { cwd: dir })).stdout) as { database: { id: string } }).database.id;
    ok(await ccp(["db", "exec", "CREATE TABLE items (batch int, n int)"], { cwd: dir }));
    await insertBatch([], 1);
  });
  after(() => ccpd.dispose());

  it("creates a branch from now: prints its id, token and DATABASE_URL once, and its expiry; the project config stays on the parent", async () => {
    const r = ok(await ccp(["db", "branch", "create", "main-app", "--name", "feature-a", "--ttl", "2h"], { cwd: dir }));
    assert.match(r.stdout, /✓ Branched main-app \(db-[0-9a-f]{12}\) at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC as new database feature-a/);
    const id = /ID\s+(db-[0-9a-f]{12})/.exec(r.stdout)?.[1] as string;
    const token = /Token\s+(\S+)/.exec(r.stdout)?.[1] as string;
    assert.ok(id && token);
    assert.match(r.stdout, /DATABASE_URL\s+postgres(ql)?:\/\//);
    assert.match(r.stdout, /Expires\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC/);
    assert.match(r.stderr, /ccp db branch reset feature-a/);
    child = { id, token };
    await insertBatch([], 2);
    assert.deepEqual(await batches(["--db-id", id, "--token", token]), [1]);
    assert.deepEqual(await batches([]), [1, 2]);
  });

  it("db list, db info and branch list say which database is a branch of which", async () => {
    const list = ok(await ccp(["db", "list"])).stdout;
    assert.match(list, /feature-a[^\n]*\n[^\n]*\n\s+branch of main-app at [^\n]+ · expires /);
    const info = ok(await ccp(["db", "info", "feature-a"])).stdout;
    assert.match(info, new RegExp(`Branch of\\s+${parentId} at `));
    assert.match(info, /Expires\s+.+ccpd destroys it then/);
    const all = JSON.parse(ok(await ccp(["db", "branch", "list", "--json"])).stdout) as { databases: { id: string; parent_id: string }[] };
    assert.deepEqual(all.databases.map((d) => [d.id, d.parent_id]), [[child.id, parentId]]);
    const mine = ok(await ccp(["db", "branch", "ls", "main-app"])).stdout;
    assert.match(mine, /feature-a\s+db-[0-9a-f]{12}\s+ready/);
    const none = await ccp(["db", "branch", "list", "feature-a"]);
    assert.equal(none.code, 0);
    assert.match(none.stderr, /No branches of feature-a/);
  });

  it("reset brings the parent's latest rows and keeps the branch's token", async () => {
    await insertBatch(["--db-id", child.id, "--token", child.token], 7);
    const declined = await ccp(["db", "branch", "reset", "feature-a"], { input: "n\n" });
    assert.equal(declined.code, 7);
    assert.match(declined.stderr, /Reset branch db-[0-9a-f]{12} \(feature-a\) to the current state of db-/);
    const r = ok(await ccp(["db", "branch", "reset", "feature-a", "-y"]));
    assert.match(r.stdout, /✓ Reset branch feature-a \(db-[0-9a-f]{12}\) to db-[0-9a-f]{12} as of .* UTC; token and password unchanged/);
    assert.deepEqual(await batches(["--db-id", child.id, "--token", child.token]), [1, 2]);
  });

  it("bad inputs: clear messages and distinct exit codes, nothing created", async () => {
    const before = ok(await ccp(["db", "list", "--json"])).stdout;
    const cases: [string[], number, RegExp][] = [
      [["db", "branch", "create", "no-such-db", "--name", "x-branch"], 3, /No database with id or name "no-such-db"/],
      [["db", "branch", "create", "main-app", "--name", "x-branch", "--at", "tomorrow"], 2, /Invalid timestamp "tomorrow"/],
      [["db", "branch", "create", "main-app", "--name", "x-branch", "--at", "2999-01-01T00:00:00Z"], 2, /in the future/],
      [["db", "branch", "create", "main-app", "--name", "x-branch", "--at", "2001-01-01T00:00:00Z"], 2, /no backup yet/],
      [["db", "branch", "create", "main-app", "--name", "feature-a"], 5, /A database named "feature-a" already exists/],
      [["db", "branch", "create", "main-app", "--name", "x-branch", "--ttl", "2h", "--expires-at", "2999-01-01T00:00:00Z"], 2, /--expires-at and --ttl do not go together/],
      [["db", "branch", "create", "main-app", "--name", "x-branch", "--ttl", "soon"], 2, /Invalid ttl "soon"/],
      [["db", "branch", "reset", "main-app", "-y"], 2, /not a branch/],
    ];
    for (const [args, code, message] of cases) {
      const r = await ccp(args);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(" "));
    }
    assert.deepEqual(JSON.parse(ok(await ccp(["db", "list", "--json"])).stdout), JSON.parse(before));
  });

  it("destroying a parent with branches says so when it asks, and its branches stay", async () => {
    const declined = await ccp(["db", "destroy", "main-app"], { cwd: dir, input: "n\n" });
    assert.equal(declined.code, 7);
    assert.match(declined.stderr, /It has 1 branch \(feature-a\), which will stay as standalone databases\./);
    const r = ok(await ccp(["db", "destroy", "main-app"], { cwd: dir, input: "y\n" }));
    assert.match(r.stderr, /Its branches stay as standalone databases: feature-a/);
    const info = ok(await ccp(["db", "info", "feature-a", "--json"])).stdout;
    assert.equal((JSON.parse(info) as { database: { parent_id?: string } }).database.parent_id, undefined);
    assert.deepEqual(await batches(["--db-id", child.id, "--token", child.token]), [1, 2]);
  });
});

describe("ccpd killed with SIGKILL in the middle of a branch", () => {
  const ccpd = new TestCcpd();
  after(() => ccpd.dispose());

  /** Postgres processes whose command line names this data dir. */
  const postgresOf = (dataDir: string) =>
    readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(dataDir);
        } catch {
          return false;
        }
      });

  it("reconciles on the next start: no orphan instance, process, row or operation; the parent branches again", async () => {
    await ccpd.start(["--backup-at", "off"]);
    const dir = tempProject(ccpd.root, "killed-");
    const parentId = (JSON.parse(ok(await ccpd.ccp(["db", "create", "--name", "big-parent", "--json"], { cwd: dir })).stdout) as { database: { id: string } }).database.id;
    // Enough data that the copy takes a moment.
    ok(await ccpd.ccp(["db", "exec", "CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 30) AS p FROM generate_series(1, 150000) g"], { cwd: dir }));
    const instances = path.join(ccpd.dataDir, "instances");
    const ids = () => readdirSync(instances).filter((n) => n.startsWith("db-")).sort();
    assert.deepEqual(ids(), [parentId]);

    const pending = ccpd.ccp(["db", "branch", "create", "big-parent", "--name", "doomed"]);
    const newId = await waitFor("the branch's instance directory", () => ids().find((n) => n !== parentId), 60_000);
    await ccpd.stop("SIGKILL");
    await pending;

    await ccpd.start(["--backup-at", "off"]);
    assert.deepEqual(ids(), [parentId], "the half-made branch's directory is gone");
    assert.deepEqual(postgresOf(path.join(instances, newId)), [], "no server of the half-made branch runs");
    const listed = JSON.parse(ok(await ccpd.ccp(["db", "list", "--json"])).stdout) as { databases: { id: string }[] };
    assert.deepEqual(listed.databases.map((d) => d.id), [parentId]);
    const catalog = new pg.Client({ host: ccpd.catalogSocketDir(), port: 5432, user: "ccp_admin", database: "postgres" });
    await catalog.connect();
    try {
      const { rows } = await catalog.query<{ n: string }>("SELECT count(*) AS n FROM ccp.operations WHERE state = 'running'");
      assert.equal(rows[0]?.n, "0");
    } finally {
      await catalog.end();
    }
    // The parent is not left in backup mode: it branches (and backs up) again.
    ok(await ccpd.ccp(["db", "branch", "create", "big-parent", "--name", "second-try"]));
    ok(await ccpd.ccp(["db", "backup", "create", "--db-id", "big-parent"]));
  });
});
