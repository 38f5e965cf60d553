import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { nextMigrationFileName, parseMigrationDir, sanitizeMigrationName, type FileEntry } from "../src/migrations/files.js";
import { planMigrations } from "../src/migrations/plan.js";
import { locate } from "../src/migrations/source-position.js";
import { TestCcpd, type RunResult } from "./helpers.js";

/** The seed's three files (seed 000, "Migrations"), with PL/pgSQL to make the no-splitting point. */
const SEED_FILES: Record<string, string> = {
  "001_create_users.sql": `CREATE TABLE users (
  id    serial PRIMARY KEY,
  name  text NOT NULL,
  email text NOT NULL UNIQUE
);
INSERT INTO users (name, email) VALUES ('Alice', 'alice@co.com');
`,
  "002_add_posts.sql": `CREATE TABLE posts (
  id      serial PRIMARY KEY,
  user_id int NOT NULL REFERENCES users(id),
  title   text NOT NULL
);
CREATE FUNCTION post_count(uid int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  RETURN (SELECT count(*) FROM posts WHERE user_id = uid);
END;
$$;
`,
  "003_add_indexes.sql": `CREATE INDEX posts_user_id_idx ON posts (user_id);
CREATE INDEX users_name_idx ON users (name);
`,
};

const MS = /\d+ms/g;

function writeFiles(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
}

/** The output with every duration replaced by `Nms`. */
function normalize(stdout: string): string {
  return stdout.replace(MS, "Nms");
}

describe("migration files, plans and positions (pure)", () => {
  const entry = (name: string, text = "SELECT 1;\n", isFile = true): FileEntry => ({ name, isFile, read: () => Buffer.from(text) });

  it("orders by number, pairs down files, reports the rest", () => {
    const m = parseMigrationDir("/m", [
      entry("010_ten.sql"),
      entry("002_two.sql", "\ufeff-- ccp:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);\n"),
      entry("002_two.down.sql"),
      entry("9_nine.sql"),
      entry("README.md"),
      entry("004_gone.down.sql"),
      entry("drafts", "", false),
      entry(".gitkeep"),
    ]);
    assert.deepEqual(
      m.migrations.map((f) => f.name),
      ["002_two.sql", "9_nine.sql", "010_ten.sql"],
    );
    assert.equal(m.migrations[0]?.noTransaction, true);
    assert.equal(m.migrations[0]?.sql.startsWith("-- ccp"), true, "the byte order mark is not sent");
    assert.equal(m.migrations[0]?.down?.name, "002_two.down.sql");
    assert.equal(m.migrations[1]?.noTransaction, false);
    assert.deepEqual(m.ignored, ["README.md", "drafts/"]);
    assert.deepEqual(m.orphanDowns, ["004_gone.down.sql"]);
    assert.throws(() => parseMigrationDir("/m", [entry("001_a.sql"), entry("1_b.sql")]), /share a number: 001_a\.sql and 1_b\.sql/);
  });

  it("names new files", () => {
    assert.equal(sanitizeMigrationName("  Add Users' E-mail!! "), "add_users_e_mail");
    assert.equal(sanitizeMigrationName("!!!"), "");
    assert.equal(nextMigrationFileName([], "init"), "001_init.sql");
    assert.equal(nextMigrationFileName([{ number: 9 }, { number: 2 }], "x"), "010_x.sql");
    assert.equal(nextMigrationFileName([{ number: 999 }], "x"), "1000_x.sql");
  });

  it("plans: pending, changed, unfinished, missing files, out of order", () => {
    const m = parseMigrationDir("/m", [entry("001_a.sql"), entry("002_b.sql", "changed"), entry("003_c.sql"), entry("004_d.sql"), entry("005_e.sql")]);
    const sum = (name: string) => m.migrations.find((f) => f.name === name)?.checksum as string;
    const row = (name: string, checksum: string, duration_ms: number | null = 1) => ({ name, checksum, applied_at: "2026-01-01T00:00:00Z", duration_ms });
    const plan = planMigrations(m.migrations, [row("001_a.sql", sum("001_a.sql")), row("002_b.sql", "old"), row("004_d.sql", sum("004_d.sql"), null), row("000_gone.sql", "x")]);
    assert.deepEqual(
      plan.files.map((f) => [f.name, f.state]),
      [
        ["001_a.sql", "applied"],
        ["002_b.sql", "changed"],
        ["003_c.sql", "pending"],
        ["004_d.sql", "unfinished"],
        ["005_e.sql", "pending"],
      ],
    );
    assert.deepEqual(
      plan.outOfOrder.map((f) => f.name),
      ["003_c.sql"],
    );
    assert.deepEqual(
      plan.missingFiles.map((r) => r.name),
      ["000_gone.sql"],
    );
  });

  it("turns a Postgres position (characters, 1-based) into line and column", () => {
    const sql = "SELECT 1;\r\n-- é 😀\nSELEC 2;";
    assert.deepEqual(locate(sql, 1), { line: 1, column: 1, text: "SELECT 1;" });
    // Postgres counts 😀 as one character; JavaScript as two code units.
    assert.deepEqual(locate(sql, 17), { line: 2, column: 6, text: "-- é 😀" });
    assert.deepEqual(locate(sql, 19), { line: 3, column: 1, text: "SELEC 2;" });
    assert.deepEqual(locate(sql, 27), { line: 3, column: 9, text: "SELEC 2;" }, "one past the end: syntax error at end of input");
    assert.equal(locate(sql, 28), undefined);
    assert.equal(locate(sql, 0), undefined);
  });
});

describe("ccp db migrate / rollback against a real ccpd", () => {
  const ccpd = new TestCcpd();
  let n = 0;

  // Wire port 0 too: other suites (and a dev ccpd) may hold 6432.
  before(() => ccpd.start(["--wire-port", "0"]));
  after(() => ccpd.dispose());

  /** A project directory with its own database (.cluster/config.json from `ccp db create`). */
  async function project(): Promise<{ dir: string; id: string; token: string; sql: <T extends pg.QueryResultRow>(text: string) => Promise<T[]>; ccp: (args: string[]) => Promise<RunResult> }> {
    const dir = path.join(ccpd.root, `project-${++n}`);
    mkdirSync(dir);
    const r = await ccpd.ccp(["db", "create", "--name", `migrate-${n}`, "--json"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const { database, token } = JSON.parse(r.stdout) as { database: { id: string }; token: string };
    const sql = async <T extends pg.QueryResultRow>(text: string): Promise<T[]> => {
      // The tenant side, directly: the instance's socket as its owner role.
      const client = new pg.Client({ host: ccpd.socketDir(database.id), port: 5432, user: "clusterbase", database: "default" });
      await client.connect();
      try {
        return (await client.query<T>(text)).rows;
      } finally {
        await client.end();
      }
    };
    return { dir, id: database.id, token, sql, ccp: (args) => ccpd.ccp(args, { cwd: dir }) };
  }

  const tracked = async (p: { sql: <T extends pg.QueryResultRow>(text: string) => Promise<T[]> }) =>
    (await p.sql<{ name: string }>("SELECT name FROM _ccp_migrations ORDER BY applied_at, name")).map((r) => r.name);

  it("applies the seed's three files with the seed's output; a re-run is a no-op; --status before and after", async () => {
    const p = await project();
    writeFiles(path.join(p.dir, "migrations"), { "001_create_users.sql": SEED_FILES["001_create_users.sql"] as string, "002_add_posts.sql": SEED_FILES["002_add_posts.sql"] as string });

    let r = await p.ccp(["db", "migrate", "--status"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "› Migration status:\n\n○ 001_create_users.sql\n○ 002_add_posts.sql\n\n2 pending migrations\n");
    assert.equal(r.stderr, "");

    // Two first, then the third, to get the seed's status block.
    r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 0, r.stderr);
    writeFiles(path.join(p.dir, "migrations"), { "003_add_indexes.sql": SEED_FILES["003_add_indexes.sql"] as string });
    r = await p.ccp(["db", "migrate", "--status"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "› Migration status:\n\n✓ 001_create_users.sql\n✓ 002_add_posts.sql\n○ 003_add_indexes.sql\n\n1 pending migration\n");

    r = await p.ccp(["db", "migrate", "--dry-run"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /1 pending migration would run \(dry run, nothing applied\):\n\n○ 003_add_indexes\.sql\n/);
    assert.deepEqual(await tracked(p), ["001_create_users.sql", "002_add_posts.sql"]);

    r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(normalize(r.stdout), "› Running 1 pending migration...\n\n✓ 003_add_indexes.sql Nms\n\n✓ 1 migration applied\n");

    r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "✓ All 3 migrations already applied\n");

    const rows = await p.sql<{ name: string; checksum: string; duration_ms: number }>("SELECT name, checksum, duration_ms FROM _ccp_migrations ORDER BY applied_at");
    assert.deepEqual(
      rows.map((x) => x.name),
      Object.keys(SEED_FILES),
    );
    for (const row of rows) {
      assert.match(row.checksum, /^[0-9a-f]{64}$/);
      assert.ok(Number.isInteger(row.duration_ms) && row.duration_ms >= 0);
    }
    assert.deepEqual(await p.sql("SELECT post_count(1) AS n"), [{ n: "0" }]);
    const indexes = await p.sql<{ indexname: string }>("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%_idx' ORDER BY 1");
    assert.deepEqual(
      indexes.map((i) => i.indexname),
      ["posts_user_id_idx", "users_name_idx"],
    );

    r = await p.ccp(["db", "migrate", "--status", "--json"]);
    const status = JSON.parse(r.stdout) as { migrations: { name: string; state: string }[]; pending: number };
    assert.deepEqual(
      status.migrations.map((m) => m.state),
      ["applied", "applied", "applied"],
    );
    assert.equal(status.pending, 0);
  });

  it("runs the whole seed example in one go with exactly the seed's lines", async () => {
    const p = await project();
    writeFiles(path.join(p.dir, "migrations"), SEED_FILES);
    const r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      normalize(r.stdout),
      "› Running 3 pending migrations...\n\n✓ 001_create_users.sql Nms\n✓ 002_add_posts.sql Nms\n✓ 003_add_indexes.sql Nms\n\n✓ 3 migrations applied\n",
    );
    const again = await p.ccp(["db", "migrate", "--json"]);
    assert.deepEqual(JSON.parse(again.stdout), { applied: [], already_applied: 3, failed: null, not_run: [] });
  });

  it("a failing second file leaves the first applied, the second absent and nothing partial; shows file, line and caret", async () => {
    const p = await project();
    writeFiles(path.join(p.dir, "migrations"), {
      "001_create_users.sql": SEED_FILES["001_create_users.sql"] as string,
      "002_add_posts.sql": "CREATE TABLE posts (id int);\nINSERT INTO posts VALUES (1);\n\nALTER TABLE users\n  ADD COLUMN age integr;\n",
      "003_add_indexes.sql": "CREATE TABLE third (id int);\n",
    });
    const r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 8, r.stderr);
    assert.equal(normalize(r.stdout), "› Running 3 pending migrations...\n\n✓ 001_create_users.sql Nms\n✗ 002_add_posts.sql\n");
    assert.match(r.stderr, /✗ 002_add_posts\.sql failed: type "integr" does not exist/);
    assert.match(r.stderr, /at migrations\/002_add_posts\.sql:5:18 \(SQLSTATE 42704\)/);
    assert.match(r.stderr, /LINE 5: {3}ADD COLUMN age integr;\n\s+\^/);
    const caret = /LINE 5: (.*)\n(\s*)\^/.exec(r.stderr);
    assert.equal(caret?.[2]?.length, "  LINE 5: ".length + "  ADD COLUMN age ".length, r.stderr);
    assert.match(r.stderr, /Nothing of it was committed; the 1 migration before it stays applied, 1 later migration not run/);

    assert.deepEqual(await tracked(p), ["001_create_users.sql"]);
    const tables = await p.sql<{ t: string }>("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
    assert.deepEqual(
      tables.map((x) => x.t),
      ["_ccp_migrations", "users"],
    );
    const cols = await p.sql<{ column_name: string }>("SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position");
    assert.deepEqual(
      cols.map((c) => c.column_name),
      ["id", "name", "email"],
    );

    // --json: the failure as data, the same exit code.
    const j = await p.ccp(["db", "migrate", "--json"]);
    assert.equal(j.code, 8);
    const body = JSON.parse(j.stdout) as { applied: unknown[]; failed: { name: string; code: string; line: number; column: number }; not_run: string[] };
    assert.deepEqual(body.applied, []);
    assert.deepEqual({ name: body.failed.name, code: body.failed.code, line: body.failed.line, column: body.failed.column }, { name: "002_add_posts.sql", code: "42704", line: 5, column: 18 });
    assert.deepEqual(body.not_run, ["003_add_indexes.sql"]);

    // Fixed, the rest runs.
    writeFileSync(path.join(p.dir, "migrations", "002_add_posts.sql"), "CREATE TABLE posts (id int);\nINSERT INTO posts VALUES (1);\n");
    const fixed = await p.ccp(["db", "migrate"]);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.match(fixed.stdout, /✓ 2 migrations applied/);
    assert.deepEqual(await p.sql("SELECT count(*)::int AS n FROM posts"), [{ n: 1 }]);
  });

  it("runs PL/pgSQL with $$ and $tag$ bodies (semicolons inside) unsplit", async () => {
    const p = await project();
    writeFiles(path.join(p.dir, "migrations"), {
      "001_functions.sql": `-- Functions and a trigger: semicolons inside dollar quotes must not split anything.
CREATE TABLE audit (id serial PRIMARY KEY, note text);
CREATE FUNCTION add_note(n text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  new_id int;
BEGIN
  INSERT INTO audit (note) VALUES (n || ';') RETURNING id INTO new_id;
  RETURN new_id;
END;
$$;
CREATE FUNCTION shout(s text) RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
  -- a $$ inside this body; and a quote: it's fine
  RETURN upper(s) || '$$;';
END;
$body$;
DO $do$
BEGIN
  PERFORM add_note('from DO; with a semicolon');
END
$do$;
`,
    });
    const r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await p.sql("SELECT shout('hi') AS s, add_note('x') AS id"), [{ s: "HI$$;", id: 2 }]);
    assert.deepEqual(await p.sql("SELECT note FROM audit ORDER BY id"), [{ note: "from DO; with a semicolon;" }, { note: "x;" }]);
  });

  it("five concurrent runs on a fresh database apply each migration exactly once", async () => {
    const p = await project();
    writeFiles(path.join(p.dir, "migrations"), {
      "001_create_counter.sql": "CREATE TABLE counter (migration text NOT NULL);\nINSERT INTO counter VALUES ('001');\n",
      "002_bump.sql": "INSERT INTO counter VALUES ('002');\nSELECT pg_sleep(0.2);\n",
      "003_bump.sql": "INSERT INTO counter VALUES ('003');\n",
      "004_bump.sql": "INSERT INTO counter VALUES ('004');\nSELECT pg_sleep(0.1);\n",
    });
    const runs = await Promise.all(Array.from({ length: 5 }, () => p.ccp(["db", "migrate"])));
    for (const r of runs) assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const counts = await p.sql<{ migration: string; n: number }>("SELECT migration, count(*)::int AS n FROM counter GROUP BY 1 ORDER BY 1");
    assert.deepEqual(counts, [
      { migration: "001", n: 1 },
      { migration: "002", n: 1 },
      { migration: "003", n: 1 },
      { migration: "004", n: 1 },
    ]);
    assert.deepEqual(await tracked(p), ["001_create_counter.sql", "002_bump.sql", "003_bump.sql", "004_bump.sql"]);
    // Across the runs each file is reported applied exactly once (others: already applied or concurrent).
    const output = runs.map((r) => r.stdout).join("");
    for (const name of ["001_create_counter.sql", "002_bump.sql", "003_bump.sql", "004_bump.sql"]) {
      assert.equal(output.match(new RegExp(`✓ ${name.replace(".", "\\.")} \\d+ms`, "g"))?.length, 1, output);
    }
  });

  it("refuses to run when an applied file was edited, naming it; --status marks it changed", async () => {
    const p = await project();
    const dir = path.join(p.dir, "migrations");
    writeFiles(dir, { "001_create_users.sql": SEED_FILES["001_create_users.sql"] as string });
    assert.equal((await p.ccp(["db", "migrate"])).code, 0);
    writeFiles(dir, { "001_create_users.sql": `${SEED_FILES["001_create_users.sql"]}-- edited\n`, "002_next.sql": "CREATE TABLE next (id int);\n" });
    const r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /001_create_users\.sql was edited after being applied/);
    assert.match(r.stderr, /ccp db migrate new NAME/);
    assert.deepEqual(await tracked(p), ["001_create_users.sql"]);
    assert.deepEqual(await p.sql("SELECT to_regclass('next') IS NULL AS absent"), [{ absent: true }]);
    const s = await p.ccp(["db", "migrate", "--status"]);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.stdout, "› Migration status:\n\n! 001_create_users.sql (changed since applied)\n○ 002_next.sql\n\n1 pending migration\n");
  });

  it("rolls back the last applied migrations with .down.sql files; a missing down file reverts nothing", async () => {
    const p = await project();
    const dir = path.join(p.dir, "migrations");
    writeFiles(dir, {
      "001_a.sql": "CREATE TABLE a (id int);\n",
      "001_a.down.sql": "DROP TABLE a;\n",
      "002_b.sql": "CREATE TABLE b (id int);\n",
      "003_c.sql": "CREATE TABLE c (id int);\n",
      "003_c.down.sql": "DROP TABLE c;\n",
    });
    let r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /✓ 3 migrations applied/); // down files are not migrations

    r = await p.ccp(["db", "rollback"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(normalize(r.stdout), "› Rolling back 1 migration...\n\n✓ 003_c.sql reverted Nms\n\n✓ 1 migration rolled back\n");
    assert.deepEqual(await tracked(p), ["001_a.sql", "002_b.sql"]);
    assert.deepEqual(await p.sql("SELECT to_regclass('c') IS NULL AS gone"), [{ gone: true }]);

    // 002_b has no down file: --steps 2 refuses before reverting anything.
    r = await p.ccp(["db", "rollback", "--steps", "2"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no 002_b\.down\.sql in migrations; nothing was reverted/);
    assert.deepEqual(await tracked(p), ["001_a.sql", "002_b.sql"]);

    writeFiles(dir, { "002_b.down.sql": "DROP TABLE b;\n" });
    r = await p.ccp(["db", "rollback", "--steps", "5"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(normalize(r.stdout), /Rolling back 2 migrations\.\.\. \(only 2 are applied\)\n\n✓ 002_b\.sql reverted Nms\n✓ 001_a\.sql reverted Nms\n\n✓ 2 migrations rolled back\n/);
    assert.deepEqual(await tracked(p), []);

    // A failing down file: nothing of it committed, its migration stays applied.
    assert.equal((await p.ccp(["db", "migrate"])).code, 0);
    writeFiles(dir, { "003_c.down.sql": "DROP TABLE c;\nSELECT nope FROM a;\n" });
    r = await p.ccp(["db", "rollback"]);
    assert.equal(r.code, 8);
    assert.match(r.stderr, /003_c\.down\.sql failed: column "nope" does not exist/);
    assert.match(r.stderr, /at migrations\/003_c\.down\.sql:2:8 \(SQLSTATE 42703\)/);
    assert.deepEqual(await tracked(p), ["001_a.sql", "002_b.sql", "003_c.sql"]);
    assert.deepEqual(await p.sql("SELECT to_regclass('c') IS NOT NULL AS kept"), [{ kept: true }]);

    r = await p.ccp(["db", "rollback", "--steps", "0"]);
    assert.equal(r.code, 2);
  });

  it("migrate new creates the next numbered, sanitised file with a header and prints its path", async () => {
    const p = await project();
    let r = await p.ccp(["db", "migrate", "new", "init"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "✓ Created migrations/001_init.sql\n");
    const text = readFileSync(path.join(p.dir, "migrations", "001_init.sql"), "utf8");
    assert.match(text, /^-- 001_init\.sql, created \d{4}-/);
    assert.match(text, /-- ccp:no-transaction/);

    writeFiles(path.join(p.dir, "migrations"), { "002_add_posts.sql": "SELECT 1;\n", "002_add_posts.down.sql": "SELECT 1;\n" });
    r = await p.ccp(["db", "migrate", "new", "Add Users' Email!"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "✓ Created migrations/003_add_users_email.sql\n");

    r = await p.ccp(["db", "migrate", "new", "x", "--dir", "db/other", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { file: "db/other/001_x.sql" });
    assert.deepEqual(readdirSync(path.join(p.dir, "db", "other")), ["001_x.sql"]);

    r = await p.ccp(["db", "migrate", "new", "!!!"]);
    assert.equal(r.code, 2);

    // The created file (comments only) applies fine.
    r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /✓ 3 migrations applied/);
  });

  it("runs a `-- ccp:no-transaction` file outside a transaction (CREATE INDEX CONCURRENTLY); a two-statement one fails clearly and drops its claim", async () => {
    const p = await project();
    const dir = path.join(p.dir, "migrations");
    writeFiles(dir, {
      "001_items.sql": "CREATE TABLE items (id int, name text);\nINSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 1000) g;\n",
      "002_items_name_idx.sql": "-- ccp:no-transaction\nCREATE INDEX CONCURRENTLY items_name_idx ON items (name);\n",
    });
    let r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /✓ 002_items_name_idx\.sql \d+ms/);
    assert.deepEqual(await p.sql("SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'items_name_idx'::regclass"), [{ valid: true }]);
    const [row] = await p.sql<{ duration_ms: number | null }>("SELECT duration_ms FROM _ccp_migrations WHERE name = '002_items_name_idx.sql'");
    assert.equal(typeof row?.duration_ms, "number");

    // Without the marker, Postgres refuses it in the transaction: the note says what to do.
    writeFiles(dir, { "003_id_idx.sql": "CREATE INDEX CONCURRENTLY items_id_idx ON items (id);\n" });
    r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 8);
    assert.match(r.stderr, /cannot run inside a transaction block/);
    assert.match(r.stderr, /first line is `-- ccp:no-transaction`/);

    // With the marker but two statements: Postgres runs them as one implicit transaction.
    writeFiles(dir, { "003_id_idx.sql": "-- ccp:no-transaction\nCREATE INDEX CONCURRENTLY items_id_idx ON items (id);\nCREATE INDEX CONCURRENTLY items_id2_idx ON items (id);\n" });
    r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 8);
    assert.match(r.stderr, /must hold exactly one statement/);
    assert.deepEqual(await tracked(p), ["001_items.sql", "002_items_name_idx.sql"]);

    writeFiles(dir, { "003_id_idx.sql": "-- ccp:no-transaction\nCREATE INDEX CONCURRENTLY items_id_idx ON items (id);\n" });
    r = await p.ccp(["db", "migrate"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await tracked(p), ["001_items.sql", "002_items_name_idx.sql", "003_id_idx.sql"]);
  });

  describe("bad input", () => {
    let p: Awaited<ReturnType<typeof project>>;
    before(async () => {
      p = await project();
    });

    it("--db-id without --token (and the reverse) is a usage error", async () => {
      for (const args of [["--db-id", p.id], ["--token", p.token]]) {
        const r = await p.ccp(["db", "migrate", ...args]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /--db-id and --token go together/);
      }
    });

    it("--db-id with --token works without .cluster/config.json", async () => {
      const elsewhere = path.join(ccpd.root, "elsewhere");
      writeFiles(path.join(elsewhere, "migrations"), { "001_x.sql": "CREATE TABLE x (id int);\n" });
      const r = await ccpd.ccp(["db", "migrate", "--db-id", p.id, "--token", p.token], { cwd: elsewhere, env: { CCP_API_URL: ccpd.url } });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await tracked(p), ["001_x.sql"]);
      const wrong = await ccpd.ccp(["db", "migrate", "--db-id", p.id, "--token", "0".repeat(64)], { cwd: elsewhere, env: { CCP_API_URL: ccpd.url } });
      assert.equal(wrong.code, 4, wrong.stderr);
    });

    it("a missing migrations directory is a usage error with a hint", async () => {
      const r = await p.ccp(["db", "migrate", "--dir", "nowhere"]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /No migrations directory: nowhere does not exist/);
      assert.match(r.stderr, /001_init\.sql|ccp db migrate new init/);
      assert.equal(existsSync(path.join(p.dir, "nowhere")), false);
    });

    it("reports files that are not NNN_name.sql on stderr, and refuses duplicate numbers", async () => {
      const dir = path.join(p.dir, "odd");
      writeFiles(dir, { "001_ok.sql": "SELECT 1;\n", "notes.txt": "x", "create_things.sql": "SELECT 1;\n", "2-bad.sql": "SELECT 1;\n", ".gitkeep": "" });
      mkdirSync(path.join(dir, "sub"));
      let r = await p.ccp(["db", "migrate", "--dir", "odd", "--status"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /Ignoring 4 files in odd that are not NNN_name\.sql or NNN_name\.down\.sql: 2-bad\.sql, create_things\.sql, notes\.txt, sub\//);
      assert.doesNotMatch(r.stderr, /gitkeep/);
      assert.match(r.stdout, /○ 001_ok\.sql/);

      writeFiles(dir, { "001_also.sql": "SELECT 1;\n" });
      r = await p.ccp(["db", "migrate", "--dir", "odd"]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /Two migrations share a number: 001_also\.sql and 001_ok\.sql/);
    });
  });
});
