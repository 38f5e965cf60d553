import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { positionLines } from "../src/format/sql-error.js";
import { renderTable } from "../src/format/table.js";
import { cellText } from "../src/format/values.js";
import { TestCcpd, type RunResult } from "./helpers.js";

/** Timings vary; everything else is compared exactly. */
const untimed = (s: string) => s.replace(/\b\d+ms\b/g, "Nms");

describe("result formatting (units)", () => {
  it("lays out a psql-style table: centred headers, numbers right, text left, no trailing spaces", () => {
    const lines = renderTable(
      [
        { name: "id", align: "right" },
        { name: "name", align: "left" },
        { name: "email", align: "left" },
      ],
      [["1", "Alice", "alice@co.com"]],
    );
    // Seed 000's exec sample ("count" over "─────"): the rule is a column as wide as its widest cell, no outer margin.
    assert.deepEqual(lines, ["id │ name  │    email", "───┼───────┼─────────────", " 1 │ Alice │ alice@co.com"]);
  });

  it("spreads multi-line values over lines marked ↵, and escapes control characters", () => {
    const lines = renderTable(
      [
        { name: "a", align: "left" },
        { name: "b", align: "left" },
      ],
      [["x\ny", "p\r\nq\nr"], ["\x1b[2J", "\tt"]],
    );
    // A tab expands to the next multiple of 8; ↵ sits in the gap after the cell, as psql puts it.
    assert.deepEqual(lines, ["   a    │     b", "────────┼──────────", "x      ↵│ p        ↵", "y       │ q        ↵", "        │ r", "\\x1B[2J │         t"]);
  });

  it("converts gateway values back to psql's text: t/f, arrays, jsonb spacing, NULL empty", () => {
    assert.equal(cellText(null, 25), "");
    assert.equal(cellText(true, 16), "t");
    assert.equal(cellText(["a b", "c", null, "", "x\"y"], 1009), '{"a b",c,NULL,"","x\\"y"}');
    assert.equal(cellText([[1, 2], [3, 4]], 1007), "{{1,2},{3,4}}");
    assert.equal(cellText({ k: [1, { x: null }], s: "é" }, 3802), '{"k": [1, {"x": null}], "s": "é"}');
    assert.equal(cellText([{ a: 1 }], 3807), '{"{\\"a\\": 1}"}');
  });

  it("puts the caret under the error position, counting characters and display width", () => {
    assert.deepEqual(positionLines("SELECT * FRM users", 10), ["LINE 1: SELECT * FRM users", "                 ^"]);
    const twoLines = "SELECT 'ü日本'\nFROM nowhere x";
    assert.deepEqual(positionLines(twoLines, Array.from(twoLines).indexOf("x") + 1), ["LINE 2: FROM nowhere x", "                     ^"]);
    // 日 and 本 take two columns each; Postgres counts them as one character each.
    assert.deepEqual(positionLines("SELECT '日本' + 1", 13), ["LINE 1: SELECT '日本' + 1", "                      ^"]);
    const long = `SELECT '${"x".repeat(100)}' + 1 AS long_column_name`;
    const [line, caret] = positionLines(long, long.indexOf("+") + 1);
    assert.ok(line?.startsWith("LINE 1: ...") && line.endsWith("..."), line);
    assert.equal(line?.[caret?.indexOf("^") ?? -1], "+");
  });
});

describe("ccp db exec against a real ccpd", () => {
  const ccpd = new TestCcpd();
  let project: string;
  let databaseId: string;
  let token: string;
  const exec = (args: string[], options: { cwd?: string; input?: string } = {}): Promise<RunResult> => ccpd.ccp(["db", "exec", ...args], { cwd: project, ...options });

  before(async () => {
    await ccpd.start();
    project = path.join(ccpd.root, "project");
    mkdirSync(project);
    const created = await ccpd.ccp(["db", "create", "--name", "exec-db"], { cwd: project });
    assert.equal(created.code, 0, created.stderr);
    ({ databaseId, token } = JSON.parse(readFileSync(path.join(project, ".cluster", "config.json"), "utf8")) as { databaseId: string; token: string });
  });
  after(() => ccpd.dispose());

  it("runs DDL and prints its command", async () => {
    const r = await exec(["CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, note text)"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(untimed(r.stdout), "\nCREATE · Nms\n");
  });

  it("prints `1 row affected · Nms` for an INSERT, and counts several rows", async () => {
    const one = await exec(["INSERT INTO users (name, email) VALUES ('Alice', 'alice@co.com');"]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(untimed(one.stdout), "\n1 row affected · Nms\n");
    assert.equal(one.stderr, "");
    const two = await exec(["INSERT INTO users (name, email) VALUES ('Bob', 'bob@co.com'), ('Carol', NULL)"]);
    assert.equal(untimed(two.stdout), "\n2 rows affected · Nms\n");
    const none = await exec(["DELETE FROM users WHERE false"]);
    assert.equal(untimed(none.stdout), "\n0 rows affected · Nms\n");
  });

  it("prints a SELECT as seed 000 shows it: blank, table, blank, (N rows), blank, timing", async () => {
    const count = await exec(["SELECT count(*) FROM users;"]);
    assert.equal(count.code, 0, count.stderr);
    assert.equal(untimed(count.stdout), "\ncount\n─────\n    3\n\n(1 row)\n\nNms\n");

    const r = await exec(["SELECT id, name, email FROM users ORDER BY id"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      untimed(r.stdout),
      ["", "id │ name  │    email", "───┼───────┼─────────────", " 1 │ Alice │ alice@co.com", " 2 │ Bob   │ bob@co.com", " 3 │ Carol │", "", "(3 rows)", "", "Nms", ""].join("\n"),
    );

    const empty = await exec(["SELECT name FROM users WHERE false"]);
    assert.equal(untimed(empty.stdout), "\nname\n────\n\n(0 rows)\n\nNms\n");
  });

  it("shows the rows of RETURNING, then the rows affected", async () => {
    const r = await exec(["DELETE FROM users WHERE name = 'Carol' RETURNING id, name;"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(untimed(r.stdout), "\nid │ name\n───┼──────\n 3 │ Carol\n\n1 row affected · Nms\n");
  });

  it("renders NULL as empty and lines up unicode and multi-line values", async () => {
    const r = await exec([`SELECT NULL::text AS "nothing", '日本語' AS "名前", 'ü' AS u, E'one\\ntwo' AS lines, 42 AS n`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      untimed(r.stdout),
      ["", "nothing │  名前  │ u │ lines │ n", "────────┼────────┼───┼───────┼───", "        │ 日本語 │ ü │ one  ↵│ 42", "        │        │   │ two   │", "", "(1 row)", "", "Nms", ""].join("\n"),
    );
  });

  it("reads the SQL from -f FILE and from stdin", async () => {
    const file = path.join(project, "query.sql");
    writeFileSync(file, "SELECT name\n  FROM users\n WHERE id = 1;\n");
    const fromFile = await exec(["-f", file]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(untimed(fromFile.stdout), "\nname\n─────\nAlice\n\n(1 row)\n\nNms\n");

    const fromStdin = await exec([], { input: "SELECT email FROM users WHERE id = 2" });
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.equal(untimed(fromStdin.stdout), "\n  email\n──────────\nbob@co.com\n\n(1 row)\n\nNms\n");

    const dash = await exec(["-f", "-"], { input: "SELECT 1 AS one" });
    assert.equal(untimed(dash.stdout), "\none\n───\n  1\n\n(1 row)\n\nNms\n");
  });

  it("runs several statements in one go and shows the last one's result", async () => {
    const r = await exec(["CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2); SELECT sum(x) AS total FROM t; DROP TABLE t"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(untimed(r.stdout), "\nDROP · Nms\n");
  });

  it("--json prints the gateway's /execute JSON", async () => {
    const r = await exec(["--json", "SELECT id, name FROM users WHERE id = 1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      command: "SELECT",
      rows_affected: 1,
      rows: [{ id: 1, name: "Alice" }],
      fields: [
        { name: "id", type_oid: 23 },
        { name: "name", type_oid: 25 },
      ],
    });
    const w = await exec(["--json", "UPDATE users SET note = 'x' WHERE id = 1"]);
    assert.deepEqual(JSON.parse(w.stdout), { command: "UPDATE", rows_affected: 1 });
  });

  it("a syntax error shows LINE n with a caret under the position, and exits 8", async () => {
    const r = await exec(["SELECT id,\n       name,, email FROM users"]);
    assert.equal(r.code, 8);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, ['✗ syntax error at or near ","', "  LINE 2:        name,, email FROM users", "                      ^", ""].join("\n"));
  });

  it("a constraint violation shows DETAIL and exits 8; nothing is written", async () => {
    const r = await exec(["INSERT INTO users (name, email) VALUES ('Dup', 'alice@co.com')"]);
    assert.equal(r.code, 8);
    assert.equal(r.stderr, ['✗ duplicate key value violates unique constraint "users_email_key"', "  DETAIL:  Key (email)=(alice@co.com) already exists.", ""].join("\n"));
    const hint = await exec(["SELECT nme FROM users"]);
    assert.equal(hint.code, 8);
    assert.match(hint.stderr, /^✗ column "nme" does not exist\n {2}LINE 1: SELECT nme FROM users\n {17}\^\n {2}Perhaps you meant to reference the column "users.name"\.\n$/);
  });

  it("--db-id with --token works from any directory; either alone is a usage error (exit 2)", async () => {
    const elsewhere = ccpd.root;
    const ok = await exec(["--db-id", databaseId, "--token", token, "SELECT 7 AS seven"], { cwd: elsewhere });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(untimed(ok.stdout), "\nseven\n─────\n    7\n\n(1 row)\n\nNms\n");

    const noToken = await exec(["--db-id", databaseId, "SELECT 1"]);
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /--db-id and --token go together: pass --token as well/);
    const noId = await exec(["--token", token, "SELECT 1"]);
    assert.equal(noId.code, 2);
    assert.match(noId.stderr, /pass --db-id as well/);
  });

  it("without .cluster/config.json says to run `ccp db create` or pass --db-id/--token (exit 2)", async () => {
    const r = await exec(["SELECT 1"], { cwd: ccpd.root });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /No database for this directory: \.cluster\/config\.json not found/);
    assert.match(r.stderr, /ccp db create --name .*--db-id and --token/);
  });

  it("without SQL (no argument, empty stdin) is a usage error; argument and -f together too", async () => {
    const none = await exec([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /No SQL to run/);
    const both = await exec(["SELECT 1", "-f", "x.sql"]);
    assert.equal(both.code, 2);
    const missing = await exec(["-f", "does-not-exist.sql"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Cannot read does-not-exist\.sql \(ENOENT\)/);
  });

  it("a wrong token exits 4 and an unknown database 3, with what to do next", async () => {
    const bad = await exec(["--db-id", databaseId, "--token", "0".repeat(64), "SELECT 1"]);
    assert.equal(bad.code, 4);
    assert.match(bad.stderr, /Invalid or missing database token[\s\S]*ccpd rejected --token/);
    const unknown = await exec(["--db-id", "db-000000000000", "--token", token, "SELECT 1"]);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /ccp db list/);
  });
});
