import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { TestCcpd } from "./helpers.js";

interface Saved {
  databaseId: string;
  token: string;
  databaseUrl: string;
  database: string;
  user: string;
}

/** Issue 7 through the built `ccp`: provision, status, reset-password, token rotate, use, --database. */
describe("ccp db provision / status / reset-password / token rotate / use / --database", () => {
  const ccpd = new TestCcpd();
  let project: string;
  let id: string;
  const saved = (dir = project): Saved => JSON.parse(readFileSync(path.join(dir, ".cluster", "config.json"), "utf8")) as Saved;
  const login = async (url: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    return c;
  };

  before(async () => {
    await ccpd.start();
    project = path.join(ccpd.root, "project");
    mkdirSync(project);
  });
  after(() => ccpd.dispose());

  describe("refuses bad input with exit 2 and the rule that was broken", () => {
    const cases: [string, string[], RegExp][] = [
      ["a 2-character name", ["ab", "-U", "okuser"], /Invalid database instance name "ab": use 3–16 characters of lowercase letters, digits and underscores/],
      ["a 17-character name", ["a".repeat(17), "-U", "okuser"], /Invalid database instance name/],
      ["an uppercase name", ["MyApp", "-U", "okuser"], /Invalid database instance name "MyApp"/],
      ["a name with a hyphen", ["my-app", "-U", "okuser"], /Invalid database instance name "my-app"/],
      ["a 2-character username", ["okname", "-U", "ab"], /Invalid username "ab": use 3–16 characters/],
      ["a 17-character username", ["okname", "-U", "u".repeat(17)], /Invalid username/],
      ["an uppercase username", ["okname", "-U", "Owner"], /Invalid username "Owner"/],
      ["a username with a hyphen", ["okname", "-U", "app-user"], /Invalid username "app-user"/],
      ["the reserved username postgres", ["okname", "-U", "postgres"], /The username "postgres" is reserved/],
      ["a pg_ username", ["okname", "-U", "pg_signal"], /names starting with "pg_"/],
    ];
    for (const [what, args, message] of cases) {
      it(`refuses ${what}`, async () => {
        const r = await ccpd.ccp(["db", "provision", ...args, "--password-stdin"], { cwd: ccpd.root, input: "long-enough-pw\n" });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, message);
      });
    }

    it("refuses a 7-character password", async () => {
      const r = await ccpd.ccp(["db", "provision", "okname", "-U", "okuser", "--password-stdin"], { cwd: ccpd.root, input: "1234567\n" });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /password is too short: use 8 or more characters/);
    });

    it("asks for --password-stdin when stdin is not a terminal, and has no plain password flag", async () => {
      const r = await ccpd.ccp(["db", "provision", "okname", "-U", "okuser"], { cwd: ccpd.root });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /standard input is not a terminal/);
      assert.match(r.stderr, /--password-stdin/);
      assert.equal((await ccpd.ccp(["db", "provision", "okname", "-U", "okuser", "--password", "12345678"], { cwd: ccpd.root })).code, 2);
    });

    it("created nothing", async () => {
      const list = JSON.parse((await ccpd.ccp(["db", "list", "--json"])).stdout) as { databases: unknown[] };
      assert.deepEqual(list.databases, []);
    });
  });

  it("provisions at the boundary lengths (16-character name and username, 8-character password)", async () => {
    const r = await ccpd.ccp(["db", "provision", "n".repeat(16), "-U", "u".repeat(16), "--password-stdin", "--json"], { cwd: ccpd.root, input: "12345678" });
    assert.equal(r.code, 0, r.stderr);
    const created = JSON.parse(r.stdout) as { database: { id: string; user: string } };
    assert.equal(created.database.user, "u".repeat(16));
    assert.equal((await ccpd.ccp(["db", "rm", created.database.id, "-y"], { cwd: ccpd.root })).code, 0);
  });

  it("provisions a database owned by the chosen user, reachable with the chosen password", async () => {
    const r = await ccpd.ccp(["db", "provision", "shop", "-U", "shop_owner", "--password-stdin"], { cwd: project, input: "s3cret-password\n" });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /✓ Provisioned database shop/);
    assert.match(r.stdout, /User\s+shop_owner/);
    id = /ID\s+(db-[0-9a-f]{12})/.exec(r.stdout)?.[1] as string;
    const s = saved();
    assert.equal(s.databaseId, id);
    assert.equal(s.user, "shop_owner");
    assert.match(s.databaseUrl, /^postgresql:\/\/shop_owner\.db-[0-9a-f]{12}:s3cret-password@/);
    const c = await login(s.databaseUrl);
    assert.deepEqual((await c.query("SELECT current_user AS u")).rows, [{ u: "shop_owner" }]);
    await c.end();
    const exec = await ccpd.ccp(["db", "exec", "SELECT current_user AS u"], { cwd: project });
    assert.equal(exec.code, 0, exec.stderr);
    assert.match(exec.stdout, /shop_owner/);
  });

  it("reset-password: the old password stops working for new sessions, an open session stays, the project's URL follows", async () => {
    const oldUrl = saved().databaseUrl;
    const open = await login(oldUrl);
    const r = await ccpd.ccp(["db", "reset-password", "shop", "--password-stdin"], { cwd: project, input: "n3w-password\n" });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /✓ Password reset for shop_owner on shop/);
    assert.match(r.stdout, /DATABASE_URL updated in \.cluster\/config\.json/);
    assert.deepEqual((await open.query("SELECT 2 AS two")).rows, [{ two: 2 }]);
    await assert.rejects(login(oldUrl), (e: pg.DatabaseError) => e.code === "28P01");
    const newUrl = saved().databaseUrl;
    assert.match(newUrl, /:n3w-password@/);
    const fresh = await login(newUrl);
    await fresh.end();
    await open.end();
    const short = await ccpd.ccp(["db", "reset-password", "shop", "--password-stdin"], { cwd: project, input: "short\n" });
    assert.equal(short.code, 2);
    assert.match(short.stderr, /too short/);
  });

  it("token rotate: the old token is refused at once, the project gets the new one", async () => {
    const oldToken = saved().token;
    const r = await ccpd.ccp(["db", "token", "rotate"], { cwd: project });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /✓ New token issued for shop/);
    assert.match(r.stdout, /Token saved to \.cluster\/config\.json/);
    assert.match(r.stderr, /previous token stopped working/);
    assert.notEqual(saved().token, oldToken);
    const stale = await ccpd.ccp(["db", "exec", "SELECT 1", "--db-id", id, "--token", oldToken], { cwd: project });
    assert.equal(stale.code, 4, stale.stderr);
    assert.equal((await ccpd.ccp(["db", "exec", "SELECT 1"], { cwd: project })).code, 0);
    // Outside the project, --db-id is needed, and the token is shown in full since it is saved nowhere.
    const elsewhere = await ccpd.ccp(["db", "token", "rotate", "--db-id", id, "--json"], { cwd: ccpd.root });
    assert.equal(elsewhere.code, 0, elsewhere.stderr);
    const rotated = JSON.parse(elsewhere.stdout) as { token: string; saved_to_project: boolean };
    assert.equal(rotated.saved_to_project, false);
    assert.equal((await ccpd.ccp(["db", "exec", "SELECT 1"], { cwd: project })).code, 4);
    const none = await ccpd.ccp(["db", "token", "rotate"], { cwd: ccpd.root });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--db-id/);
  });

  it("use: writes the project config (issuing a new token, and saying so), then exec needs no flags", async () => {
    const dir = path.join(ccpd.root, "other");
    mkdirSync(dir);
    const r = await ccpd.ccp(["db", "use", "shop"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /✓ Using database shop/);
    assert.match(r.stderr, /a new token was issued; the previous token stops working/i);
    const s = saved(dir);
    assert.equal(s.databaseId, id);
    assert.match(s.databaseUrl, /:n3w-password@/);
    const exec = await ccpd.ccp(["db", "exec", "SELECT 41 + 1 AS answer"], { cwd: dir });
    assert.equal(exec.code, 0, exec.stderr);
    assert.match(exec.stdout, /42/);
    // The first project's token was replaced: `use` there again, this time with the token we hold.
    const withToken = await ccpd.ccp(["db", "use", id, "--token", s.token], { cwd: project });
    assert.equal(withToken.code, 0, withToken.stderr);
    assert.doesNotMatch(withToken.stderr, /new token was issued/);
    assert.equal((await ccpd.ccp(["db", "exec", "SELECT 1"], { cwd: project })).code, 0);
    const wrong = await ccpd.ccp(["db", "use", id, "--token", "f".repeat(64)], { cwd: dir });
    assert.equal(wrong.code, 4);
    assert.match(wrong.stderr, /not valid/);
  });

  it("several databases per instance: CREATE DATABASE via exec, then --database on exec and migrate", async () => {
    const created = await ccpd.ccp(["db", "exec", "CREATE DATABASE app"], { cwd: project });
    assert.equal(created.code, 0, created.stderr);
    const inApp = await ccpd.ccp(["db", "exec", "--database", "app", "SELECT current_database() AS d"], { cwd: project });
    assert.equal(inApp.code, 0, inApp.stderr);
    assert.match(inApp.stdout, /\bapp\b/);
    const migrations = path.join(project, "migrations");
    mkdirSync(migrations);
    writeFileSync(path.join(migrations, "001_items.sql"), "CREATE TABLE items (id int);\n");
    const migrate = await ccpd.ccp(["db", "migrate", "--database", "app"], { cwd: project });
    assert.equal(migrate.code, 0, migrate.stderr);
    const there = await ccpd.ccp(["db", "exec", "--database", "app", "--json", "SELECT count(*)::int AS n FROM items"], { cwd: project });
    assert.equal(there.code, 0, there.stderr);
    const notDefault = await ccpd.ccp(["db", "exec", "SELECT count(*) FROM items"], { cwd: project });
    assert.equal(notDefault.code, 8);
    // `use --database` makes it the directory's default.
    const dir = path.join(ccpd.root, "appdir");
    mkdirSync(dir);
    assert.equal((await ccpd.ccp(["db", "use", "shop", "--database", "app"], { cwd: dir })).code, 0);
    assert.match(saved(dir).databaseUrl, /\/app$/);
    const implicit = await ccpd.ccp(["db", "exec", "SELECT current_database() AS d"], { cwd: dir });
    assert.match(implicit.stdout, /\bapp\b/);
  });

  it("list and info show the owner and the databases inside", async () => {
    const list = await ccpd.ccp(["db", "list"]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /• shop\s+ready\s+db-[0-9a-f]{12}\n\s+db-[0-9a-f]{12}\.localhost · owner shop_owner · databases: app, default/);
    const info = await ccpd.ccp(["db", "info", "shop"]);
    assert.match(info.stdout, /User\s+shop_owner/);
    assert.match(info.stdout, /Databases\s+app, default/);
  });

  it("status shows state, host, version, size, connections, uptime, last backup and databases", async () => {
    const r = await ccpd.ccp(["db", "status", "shop"]);
    assert.equal(r.code, 0, r.stderr);
    for (const line of [
      /Database shop \(db-[0-9a-f]{12}\)/,
      /State\s+ready/,
      /Host\s+db-[0-9a-f]{12}\.localhost/,
      /Owner\s+shop_owner/,
      /Postgres\s+\d+\.\d+/,
      /Size\s+[\d.]+ (kB|MB|GB)/,
      /Connections\s+\d+ \/ \d+/,
      /Uptime\s+\d+[dhms]/,
      /Last backup\s+\S+/,
      /Databases\s+app, default/,
    ]) {
      assert.match(r.stdout, line);
    }
    const json = JSON.parse((await ccpd.ccp(["db", "status", id, "--json"])).stdout) as { status: Record<string, unknown> };
    assert.equal(json.status["state"], "ready");
    assert.equal(json.status["owner"], "shop_owner");
    const missing = await ccpd.ccp(["db", "status", "nope"]);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /ccp db list/);
  });
});
