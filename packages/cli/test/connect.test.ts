import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { renderExpanded } from "../src/format/expanded.js";
import { historyFile, loadHistory, saveHistory } from "../src/shell/history.js";
import { parseMeta } from "../src/shell/meta.js";
import { SqlSplitter } from "../src/shell/statements.js";
import { CCP_BIN, TestCcpd, waitFor } from "./helpers.js";

/** Timings vary; everything else is compared exactly. */
const untimed = (s: string) => s.replace(/\b\d+ms\b/g, "Nms");

/** Feed lines to a splitter; the statements completed, and whether one is still pending. */
function split(...lines: string[]): { statements: string[]; pending: boolean } {
  const s = new SqlSplitter();
  const statements = lines.flatMap((l) => s.push(l));
  return { statements, pending: s.pending };
}

describe("shell pieces (units)", () => {
  it("ends a statement at ; and keeps a multi-line one pending until then", () => {
    assert.deepEqual(split("SELECT 1 AS a,"), { statements: [], pending: true });
    assert.deepEqual(split("SELECT 1 AS a,", "  2 AS b;"), { statements: ["SELECT 1 AS a,\n  2 AS b;"], pending: false });
    assert.deepEqual(split("SELECT 1; SELECT 2;  "), { statements: ["SELECT 1;", "SELECT 2;"], pending: false });
    assert.deepEqual(split(";;", "  "), { statements: [], pending: false });
  });

  it("does not end a statement at ; inside quotes, dollar quotes, comments or parentheses", () => {
    assert.deepEqual(split("SELECT 'a;b', \"x;y\" -- c;", "FROM t;").statements, ["SELECT 'a;b', \"x;y\" -- c;\nFROM t;"]);
    assert.deepEqual(split("SELECT 'it''s;'", ";").statements, ["SELECT 'it''s;'\n;"]);
    assert.deepEqual(split("SELECT E'a\\';b';").statements, ["SELECT E'a\\';b';"]);
    // A backslash is no escape in a standard string: 'a\' ends there.
    assert.deepEqual(split("SELECT 'a\\'; SELECT 2;").statements, ["SELECT 'a\\';", "SELECT 2;"]);
    const fn = ["CREATE FUNCTION f() RETURNS int AS $$", "BEGIN RETURN 1; END;", "$$ LANGUAGE plpgsql;"];
    assert.deepEqual(split(...fn).statements, [fn.join("\n")]);
    assert.equal(split(fn[0] as string, fn[1] as string).pending, true);
    assert.deepEqual(split("SELECT $tag$ $$; $tag$;").statements, ["SELECT $tag$ $$; $tag$;"]);
    assert.deepEqual(split("SELECT /* a; /* nested; */ b; */ 1;").statements, ["SELECT /* a; /* nested; */ b; */ 1;"]);
    assert.deepEqual(split("CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2);").statements, ["CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2);"]);
    // $1 is a parameter, not a dollar quote.
    assert.deepEqual(split("SELECT $1;").statements, ["SELECT $1;"]);
  });

  it("drops comment-only input at the end, and flushes a last statement without ;", () => {
    const s = new SqlSplitter();
    s.push("-- just a comment;");
    assert.equal(s.pending, false);
    assert.equal(s.flush(), undefined);
    s.push("SELECT 1");
    assert.equal(s.flush(), "SELECT 1");
    s.push("SELECT 'open");
    s.reset();
    assert.equal(s.pending, false);
  });

  it("parses meta-commands and their argument", () => {
    assert.deepEqual(parseMeta("\\d users;"), { name: "d", arg: "users" });
    assert.deepEqual(parseMeta("  \\dt;"), { name: "dt", arg: "" });
    assert.deepEqual(parseMeta('\\d "My Table"'), { name: "d", arg: '"My Table"' });
    assert.deepEqual(parseMeta("\\x auto"), { name: "x", arg: "auto" });
  });

  it("lays out expanded display as RECORD blocks", () => {
    assert.deepEqual(renderExpanded(["id", "name"], [["1", "Alice"], ["2", "two\nlines"]]), [
      "─[ RECORD 1 ]─",
      "id   │ 1",
      "name │ Alice",
      "─[ RECORD 2 ]─",
      "id   │ 2",
      "name │ two",
      "     │ lines",
    ]);
  });

  it("keeps history per database in the data dir, 0600 in a 0700 directory, without \\q", () => {
    const root = mkdtempSync(path.join(os.tmpdir(), "ccp-history-"));
    const file = historyFile("db-0123456789ab", { XDG_DATA_HOME: path.join(root, "xdg") });
    assert.equal(file, path.join(root, "xdg", "ccp", "history", "db-0123456789ab"));
    assert.equal(historyFile("db-0123456789ab", { HOME: root }), path.join(root, ".local", "share", "ccp", "history", "db-0123456789ab"));
    saveHistory(file, ["\\q", "SELECT 2;", "SELECT 1;"]); // readline's order: newest first
    assert.equal(readFileSync(file, "utf8"), "SELECT 1;\nSELECT 2;\n");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);
    assert.deepEqual(loadHistory(file), ["SELECT 2;", "SELECT 1;"]);
    assert.deepEqual(loadHistory(path.join(root, "missing")), []);
  });
});

describe("ccp db connect against a real ccpd", () => {
  const ccpd = new TestCcpd();
  let project: string;
  let databaseId: string;
  const connect = (args: string[], input: string) => ccpd.ccp(["db", "connect", ...args], { cwd: project, input });

  before(async () => {
    await ccpd.start();
    project = path.join(ccpd.root, "project");
    mkdirSync(project);
    const created = await ccpd.ccp(["db", "create", "--name", "shell-db"], { cwd: project });
    assert.equal(created.code, 0, created.stderr);
    ({ databaseId } = JSON.parse(readFileSync(path.join(project, ".cluster", "config.json"), "utf8")) as { databaseId: string });
    const table = await ccpd.ccp(["db", "exec", "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, active boolean DEFAULT true)"], { cwd: project });
    assert.equal(table.code, 0, table.stderr);
  });
  after(() => ccpd.dispose());

  it("runs a piped script: statements across lines, with ; in strings and $$ quotes, meta-commands too; no prompt or header", async () => {
    const script = [
      "INSERT INTO users (name, email) VALUES ('Alice', 'a;@co.com'),",
      "  ($$Bob;$$, NULL);",
      "SELECT id, name, email FROM users ORDER BY id; -- a comment;",
      "\\x",
      "SELECT 1 AS a, 'x' AS b;",
      "\\x off",
      "\\timing off",
      "CREATE INDEX users_name ON users (name);",
      "SELECT count(*) FROM users", // the last statement may leave out its ;
    ].join("\n");
    const r = await connect([], script);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.equal(
      untimed(r.stdout),
      [
        "2 rows affected · Nms",
        "id │ name  │   email",
        `───┼───────┼${"─".repeat(10)}`,
        " 1 │ Alice │ a;@co.com",
        " 2 │ Bob;  │",
        "(2 rows)",
        "Nms",
        "Expanded display is on.",
        "─[ RECORD 1 ]─",
        "a │ 1",
        "b │ x",
        "(1 row)",
        "Nms",
        "Expanded display is off.",
        "Timing is off.",
        "CREATE",
        "count",
        "─────",
        "    2",
        "(1 row)",
        "",
      ].join("\n"),
    );
  });

  it("stops a piped script at the first error with exit code 8, showing LINE and caret", async () => {
    const r = await connect([], "SELECT 1 AS one;\nSELECT *\n  FRM users;\nSELECT 2 AS never;\n");
    assert.equal(r.code, 8);
    assert.equal(untimed(r.stdout), "one\n───\n  1\n(1 row)\nNms\n");
    assert.equal(r.stderr, ['✗ syntax error at or near "FRM"', "  LINE 2:   FRM users;", "            ^", ""].join("\n"));
  });

  it("describes tables with \\dt and \\d in a script, and rejects unknown meta-commands", async () => {
    const r = await connect([], "\\dt\n\\d users\n");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        `${" ".repeat(9)}List of relations`,
        "Schema │ Name  │ Type  │    Owner",
        `───────┼───────┼───────┼${"─".repeat(12)}`,
        "public │ users │ table │ clusterbase",
        "(1 row)",
        `${" ".repeat(21)}Table "public.users"`,
        "Column │  Type   │ Nullable │              Default",
        `───────┼─────────┼──────────┼${"─".repeat(34)}`,
        "id     │ integer │ not null │ nextval('users_id_seq'::regclass)",
        "name   │ text    │ not null │",
        "email  │ text    │          │",
        "active │ boolean │          │ true",
        "Indexes:",
        '    "users_pkey" PRIMARY KEY, btree (id)',
        '    "users_email_key" UNIQUE CONSTRAINT, btree (email)',
        '    "users_name" btree (name)',
        "",
      ].join("\n"),
    );
    const unknown = await connect([], "\\foo\nSELECT 1;\n");
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stdout, "");
    assert.equal(unknown.stderr, "✗ invalid command \\foo. Try \\? for help.\n");
    const missing = await connect([], "\\d nowhere\n");
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /^✗ Did not find any relation named "nowhere"\./);
  });

  it("switches to another Postgres database of the instance with \\c (and --database)", async () => {
    const r = await connect([], "CREATE DATABASE second;\n\\c second\nSELECT current_database() AS db;\n\\c nosuch\nSELECT 'not run';\n");
    assert.equal(r.code, 8);
    assert.equal(untimed(r.stdout), ['CREATE · Nms', 'You are now connected to database "second".', "  db", "──────", "second", "(1 row)", "Nms", ""].join("\n"));
    assert.match(r.stderr, /^✗ database "nosuch" does not exist\n/);
    const flag = await connect(["--database", "second"], "SELECT current_database() AS db;");
    assert.equal(flag.code, 0, flag.stderr);
    assert.match(flag.stdout, /^ {2}db\n─+\nsecond\n/);
  });

  it("accepts the project's database by id or name, and says how to target another", async () => {
    for (const ref of [databaseId, "shell-db"]) {
      const r = await connect([ref], "SELECT 7 AS seven;");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^seven\n/);
    }
    const other = await connect(["other-db"], "SELECT 1;");
    assert.equal(other.code, 3);
    assert.match(other.stderr, /^✗ other-db is not this project's database: \.cluster\/config\.json is for shell-db \(db-[0-9a-f]{12}\)\.\n {2}.*--db-id <id> --token <token>/);
    const half = await connect(["--db-id", databaseId], "SELECT 1;");
    assert.equal(half.code, 2);
    assert.match(half.stderr, /--db-id and --token go together/);
  });
});

/** tmux, installed if missing and we may; otherwise the reason the terminal tests are skipped. */
function tmuxAvailable(): true | string {
  const has = () => spawnSync("tmux", ["-V"], { stdio: "ignore" }).status === 0;
  if (has()) return true;
  if (process.getuid?.() !== 0) return "tmux is not installed and installing it needs root (apt-get install -y tmux)";
  spawnSync("apt-get", ["install", "-y", "tmux"], { stdio: "ignore", timeout: 180_000, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  return has() ? true : "tmux is not installed and `apt-get install -y tmux` failed";
}

const tmux = tmuxAvailable();

/**
 * The real `ccp db connect` in a pseudo-terminal: a tmux server of its own
 * (its environment is the one sessions get), keys sent as hex bytes so tmux
 * does not read `;` as its command separator, the screen read with capture-pane.
 */
class Terminal {
  static #count = 0;
  readonly #socket = `ccp-test-${process.pid}-${++Terminal.#count}`;
  #sessions = 0;
  #env: NodeJS.ProcessEnv;

  constructor(env: NodeJS.ProcessEnv) {
    this.#env = { ...env, NO_COLOR: "1", TERM: "xterm-256color", LANG: "C.UTF-8" };
  }

  #tmux(args: string[]): string {
    const r = spawnSync("tmux", ["-L", this.#socket, ...args], { env: this.#env, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`tmux ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  }

  /** Start `ccp db connect` in a 120×40 pane; the pane stays after it exits and shows its exit code. */
  open(cwd: string, args: string[] = []): Pane {
    // A session that outlives the others: when the last session of a tmux server is killed the
    // server exits, and a new-session racing that exit fails with "server exited unexpectedly".
    if (this.#sessions === 0) this.#tmux(["new-session", "-d", "-s", "keep", "sleep 86400"]);
    const name = `s${++this.#sessions}`;
    const quoted = [process.execPath, CCP_BIN, "db", "connect", ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    this.#tmux(["new-session", "-d", "-s", name, "-x", "120", "-y", "40", "-c", cwd, `${quoted}; echo "[exited $?]"; sleep 600`]);
    return new Pane(name, (a) => this.#tmux(a));
  }

  close(): void {
    spawnSync("tmux", ["-L", this.#socket, "kill-server"], { stdio: "ignore" });
  }
}

class Pane {
  constructor(
    readonly name: string,
    readonly tmux: (args: string[]) => string,
  ) {}

  /** Type text (no Enter). */
  type(text: string): void {
    this.tmux(["send-keys", "-t", this.name, "-H", ...Array.from(Buffer.from(text, "utf8"), (b) => b.toString(16).padStart(2, "0"))]);
  }

  /** Named keys: Enter, Up, C-c, C-d. */
  keys(...keys: string[]): void {
    this.tmux(["send-keys", "-t", this.name, ...keys]);
  }

  line(text: string): void {
    this.type(text);
    this.keys("Enter");
  }

  screen(): string {
    return this.tmux(["capture-pane", "-p", "-t", this.name])
      .split("\n")
      .map((l) => l.trimEnd())
      .join("\n")
      .trimEnd();
  }

  /** Poll the screen until `test` holds; fail with the screen after `timeoutMs`. */
  async waitFor(what: string, test: (screen: string) => boolean, timeoutMs = 20_000): Promise<string> {
    try {
      return await waitFor(what, () => {
        const s = this.screen();
        return test(s) ? s : undefined;
      }, timeoutMs);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- screen ---\n${this.screen()}`);
    }
  }

  waitForText(text: string | RegExp): Promise<string> {
    return this.waitFor(String(text), (s) => (typeof text === "string" ? s.includes(text) : text.test(s)));
  }

  /** The prompt is back: the last non-empty line is `›` (optionally with input). */
  async idle(): Promise<string> {
    return this.waitFor("the prompt", (s) => /(^|\n)› ?$/.test(s));
  }

  close(): void {
    this.tmux(["kill-session", "-t", this.name]);
  }
}

describe("ccp db connect in a terminal (tmux)", { skip: tmux === true ? false : tmux }, () => {
  const ccpd = new TestCcpd();
  let project: string;
  let databaseId: string;
  let term: Terminal;

  before(async () => {
    await ccpd.start();
    project = path.join(ccpd.root, "project");
    mkdirSync(project);
    const created = await ccpd.ccp(["db", "create", "--name", "tty-db"], { cwd: project });
    assert.equal(created.code, 0, created.stderr);
    ({ databaseId } = JSON.parse(readFileSync(path.join(project, ".cluster", "config.json"), "utf8")) as { databaseId: string });
    term = new Terminal(ccpd.env);
  });
  after(async () => {
    term?.close();
    await ccpd.dispose();
  });

  it("shows the header box, runs a statement typed over two lines, and prints its table", async () => {
    const pane = term.open(project);
    const start = await pane.idle();
    assert.equal(
      start,
      [
        "╭──────────────────────────────────────────────────╮",
        `│ >_ ccp db connect (${databaseId})              │`,
        "│                                                  │",
        "│ database: default                                │",
        `│ host: ${databaseId}.localhost                  │`,
        "╰──────────────────────────────────────────────────╯",
        "Enter SQL (end with ;) · \\? for help · \\q to quit",
        "",
        "›",
      ].join("\n"),
    );
    pane.line("SELECT 1 AS a,");
    await pane.waitFor("the continuation prompt", (s) => s.endsWith("\n…"));
    pane.line("2 AS b;");
    await pane.waitForText("(1 row)");
    const screen = untimed(await pane.idle());
    assert.ok(screen.endsWith(["› SELECT 1 AS a,", "… 2 AS b;", "a │ b", "──┼──", "1 │ 2", "(1 row)", "Nms", "›"].join("\n")), screen);
    pane.close();
  });

  it("recalls the previous session's query with Up (history kept per database, 0600)", async () => {
    const first = term.open(project);
    await first.idle();
    first.line("SELECT 'from history' AS h;");
    await first.waitForText("(1 row)");
    first.line("\\q");
    await first.waitForText("[exited 0]");
    first.close();
    const file = path.join(ccpd.env["XDG_DATA_HOME"] as string, "ccp", "history", databaseId);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);

    const second = term.open(project);
    await second.idle();
    second.keys("Up");
    await second.waitFor("the recalled query", (s) => s.endsWith("› SELECT 'from history' AS h;"));
    second.keys("Enter");
    const screen = await second.waitForText("from history\n(1 row)");
    assert.match(screen, / {2}h\n─+\nfrom history\n\(1 row\)/);
    second.close();
  });

  it("lists tables with \\dt and describes one with \\d", async () => {
    const pane = term.open(project);
    await pane.idle();
    pane.line("CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL, plan text DEFAULT 'free');");
    await pane.waitForText("CREATE · ");
    pane.line("\\dt");
    await pane.waitForText("(1 row)");
    pane.line("\\d users");
    const screen = await pane.waitForText("Indexes:\n");
    assert.ok(
      screen.includes(["Schema │ Name  │ Type  │    Owner", `───────┼───────┼───────┼${"─".repeat(12)}`, "public │ users │ table │ clusterbase", "(1 row)"].join("\n")),
      screen,
    );
    assert.ok(
      screen.includes(
        [
          'Table "public.users"',
          "Column │  Type  │ Nullable │           Default",
          `───────┼────────┼──────────┼${"─".repeat(29)}`,
          "id     │ bigint │ not null │ generated always as identity",
          "email  │ text   │ not null │",
          "plan   │ text   │          │ 'free'::text",
          "Indexes:",
          '    "users_pkey" PRIMARY KEY, btree (id)',
        ].join("\n"),
      ),
      screen,
    );
    pane.close();
  });

  it("shows a syntax error with its caret and carries on", async () => {
    const pane = term.open(project);
    await pane.idle();
    pane.line("SELECT * FRM users;");
    await pane.waitForText("^");
    pane.line("SELECT 'still here' AS ok;");
    const screen = await pane.waitForText("still here\n(1 row)");
    assert.ok(screen.includes(['› SELECT * FRM users;', '✗ syntax error at or near "FRM"', "  LINE 1: SELECT * FRM users;", "                   ^", "› SELECT 'still here' AS ok;"].join("\n")), screen);
    pane.close();
  });

  it("Ctrl+C clears the input (and a pending statement) and keeps running; on an empty line it exits", async () => {
    const pane = term.open(project);
    await pane.idle();
    pane.type("SELECT 'never run'");
    pane.keys("C-c");
    await pane.waitForText("› SELECT 'never run'^C\n›");
    pane.line("SELECT 1 AS a,");
    await pane.waitFor("the continuation prompt", (s) => s.endsWith("\n…"));
    pane.keys("C-c");
    await pane.waitForText("… ^C\n›");
    pane.line("SELECT 'after' AS x;");
    const screen = await pane.waitForText("after\n(1 row)");
    assert.ok(!screen.includes("never run\n"), screen);
    await pane.idle();
    pane.keys("C-c");
    await pane.waitForText("[exited 0]");
    pane.close();
  });

  it("Ctrl+C while a statement runs cancels it (as psql does) and the shell carries on", async () => {
    // How many statements run pg_sleep(25) right now, asked through the gateway on another connection.
    const sleeping = async () => {
      const r = await ccpd.ccp(["db", "exec", "--json", "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(25)%'"], { cwd: project });
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { rows: { n: number }[] }).rows[0]?.n;
    };
    const pane = term.open(project);
    await pane.idle();
    // 25 s is under the gateway's 30 s statement timeout and over waitFor's 20 s: only the cancel ends it in time.
    pane.line("SELECT pg_sleep(25);");
    await waitFor("the sleep to run", async () => ((await sleeping()) === 1 ? true : undefined));
    pane.keys("C-c");
    const screen = await pane.waitForText("✗ canceling statement due to user request");
    assert.ok(screen.includes("› SELECT pg_sleep(25);\n^CCancel request sent\n✗ canceling statement due to user request"), screen);
    await pane.idle();
    await waitFor("the sleep to stop", async () => ((await sleeping()) === 0 ? true : undefined), 10_000);
    pane.line("SELECT 'after the cancel' AS x;");
    await pane.waitForText("after the cancel\n(1 row)");
    pane.close();
  });

  it("Ctrl+D exits", async () => {
    const pane = term.open(project);
    await pane.idle();
    pane.keys("C-d");
    const screen = await pane.waitForText("[exited 0]");
    assert.match(screen, /›\s*\n\[exited 0\]$/);
    pane.close();
  });

  it("pages a result taller than the terminal through $PAGER", async () => {
    // A pager that marks its lines: no keys to press, and the screen shows it was used.
    const paged = new Terminal({ ...ccpd.env, PAGER: "sed s/^/paged:/" });
    try {
      const p = paged.open(project);
      await p.idle();
      p.line("SELECT n FROM generate_series(1, 60) n;");
      const screen = await p.waitForText("paged:(60 rows)");
      assert.match(screen, /paged:59\npaged:60\npaged:\(60 rows\)/);
      p.line("SELECT 1 AS short;");
      await p.waitForText(/short\n─────\n {4}1\n\(1 row\)/);
    } finally {
      paged.close();
    }
  });
});
