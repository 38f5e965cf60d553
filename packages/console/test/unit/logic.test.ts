import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { branchBody, branchesFromConflict, branchesOf, branchOfLabel, localToRfc3339 } from "../../src/lib/branches.js";
import { columnsInScope } from "../../src/lib/completion.js";
import { csvField, toCsv, toJson, toJsonRows } from "../../src/lib/csv.js";
import { lifecycleOf, parsePrometheus, rates, readingOf } from "../../src/lib/prometheus.js";
import { browseSql, quoteIdent, quoteLiteral, updateRowSql } from "../../src/lib/sql-text.js";
import { errorOffset, splitStatements, statementAt } from "../../src/lib/statements.js";

describe("console: CSV and JSON export", () => {
  it("quotes commas, quotes, newlines and edge spaces; NULL is empty; JSON values as JSON; CRLF lines", () => {
    const csv = toCsv({
      fields: [{ name: "id" }, { name: "note, quoted" }, { name: "data" }],
      rows: [
        [1, 'say "hi"', { a: [1, 2] }],
        [2, null, "line1\nline2"],
        [3, " padded", true],
      ],
    });
    assert.equal(csv, 'id,"note, quoted",data\r\n1,"say ""hi""","{""a"":[1,2]}"\r\n2,,"line1\nline2"\r\n3," padded",true\r\n');
    assert.equal(csvField("plain"), "plain");
    assert.equal(csvField("a\rb"), '"a\rb"');
  });
  it("JSON keeps types and does not lose a repeated column name", () => {
    const result = { fields: [{ name: "id" }, { name: "id" }, { name: "v" }], rows: [[1, 2, null]] };
    assert.deepEqual(toJsonRows(result), [{ id: 1, id_2: 2, v: null }]);
    assert.deepEqual(JSON.parse(toJson(result)), [{ id: 1, id_2: 2, v: null }]);
  });
});

describe("console: SQL generated for row edits and browsing", () => {
  it("quotes identifiers and literals", () => {
    assert.equal(quoteIdent('we"ird'), '"we""ird"');
    assert.equal(quoteLiteral("O'Brien \\n"), "'O''Brien \\n'");
    assert.equal(quoteLiteral(null), "NULL");
  });
  it("updates one row by its whole primary key, only the changed columns, returning it", () => {
    const sql = updateRowSql({
      schema: "public",
      table: "Order Items",
      key: [
        { column: "order_id", value: "7" },
        { column: "line", value: "2" },
      ],
      changes: [
        { column: "note", value: "it's done" },
        { column: "shipped_at", value: null },
      ],
    });
    assert.equal(sql, `UPDATE "public"."Order Items" SET "note" = 'it''s done', "shipped_at" = NULL WHERE "order_id" = '7' AND "line" = '2' RETURNING *;`);
  });
  it("refuses a table without a primary key and an edit that changes nothing", () => {
    assert.throws(() => updateRowSql({ schema: "public", table: "t", key: [], changes: [{ column: "a", value: "1" }] }), /no primary key/);
    assert.throws(() => updateRowSql({ schema: "public", table: "t", key: [{ column: "id", value: "1" }], changes: [] }), /Nothing changed/);
  });
  it("browses with the filter value as a parameter, never in the text", () => {
    const q = browseSql({ schema: "s", table: "t", orderBy: "name", descending: true, filter: { column: "name", op: "contains", value: "50%_off'" }, limit: 51, offset: 100 });
    assert.equal(q.sql, `SELECT * FROM "s"."t" WHERE "name"::text ILIKE $1 ORDER BY "name" DESC NULLS LAST LIMIT 51 OFFSET 100`);
    assert.deepEqual(q.params, ["%50\\%\\_off'%"]);
    assert.deepEqual(browseSql({ schema: "s", table: "t", filter: { column: "a", op: "is null", value: "ignored" }, limit: 10, offset: 0 }), {
      sql: `SELECT * FROM "s"."t" WHERE "a" IS NULL LIMIT 10 OFFSET 0`,
      params: [],
    });
    assert.equal(browseSql({ schema: "s", table: "t", filter: { column: "n", op: ">", value: "3" }, limit: 10, offset: 0 }).sql, `SELECT * FROM "s"."t" WHERE "n" > $1 LIMIT 10 OFFSET 0`);
  });
});

describe("console: statement at the cursor", () => {
  const text = "SELECT 1;\n\nSELECT ';' AS semi, \"a;b\" -- c;\n FROM t;  /* x; /* y; */ */ SELECT $f$ ; $f$, $$;$$;\nSELECT E'\\';' ;";
  it("splits at top-level semicolons only", () => {
    assert.deepEqual(
      splitStatements(text).map((s) => s.text),
      ["SELECT 1", "SELECT ';' AS semi, \"a;b\" -- c;\n FROM t", "/* x; /* y; */ */ SELECT $f$ ; $f$, $$;$$", "SELECT E'\\';'"],
    );
  });
  it("picks the statement under the cursor, else the one before it", () => {
    assert.equal(statementAt(text, 3)?.text, "SELECT 1");
    assert.equal(statementAt(text, 10)?.text, "SELECT 1"); // blank line after the first statement
    assert.equal(statementAt(text, text.indexOf("FROM"))?.text, "SELECT ';' AS semi, \"a;b\" -- c;\n FROM t");
    assert.equal(statementAt(text, text.length)?.text, "SELECT E'\\';'");
    assert.equal(statementAt("  \n ", 1), undefined);
    assert.equal(statementAt("\n\nSELECT 2", 0)?.text, "SELECT 2");
  });
  it("maps Postgres' 1-based character position to an editor offset, astral characters included", () => {
    assert.equal(errorOffset("SELEC 1", 1, 10), 10);
    assert.equal(errorOffset("SELECT '😀' FRO", 13, 0), 13); // 12 characters before, one of them two UTF-16 units
  });
});

describe("console: column completion in scope", () => {
  const tables = [
    { schema: "public", name: "items", columns: [{ name: "price", type: "numeric" }] },
    { schema: "public", name: "Orders", columns: [{ name: "total", type: "integer" }] },
    { schema: "public", name: "item", columns: [{ name: "sku", type: "text" }] },
  ];
  it("offers the columns of the tables the text names, by whole name, quoted names case-sensitively", () => {
    assert.deepEqual(columnsInScope("SELECT * FROM items WHERE pr", tables), [{ label: "price", detail: "items · numeric" }]);
    assert.deepEqual(columnsInScope("select * from ITEMS where ", tables).map((o) => o.label), ["price"]);
    assert.deepEqual(columnsInScope('SELECT * FROM public."Orders" WHERE ', tables).map((o) => o.label), ["total"]);
    assert.deepEqual(columnsInScope("SELECT * FROM orders", tables), []);
    assert.deepEqual(columnsInScope("SELECT * FROM item_log", tables), []);
  });
});

describe("console: monitoring figures from ccpd's /metrics", () => {
  const text = [
    "# HELP pg_up 1 when up",
    "# TYPE pg_up gauge",
    'pg_up{database_id="db-1",name="a"} 1',
    'pg_up{database_id="db-2",name="b"} 0',
    'pg_stat_database_numbackends{database_id="db-1",name="a",datname="default"} 2',
    'pg_stat_database_numbackends{database_id="db-1",name="a",datname="app"} 1',
    'pg_stat_database_xact_commit{database_id="db-1",name="a",datname="default"} 100',
    'pg_stat_database_xact_rollback{database_id="db-1",name="a",datname="default"} 4',
    'pg_stat_database_blks_hit{database_id="db-1",name="a",datname="default"} 90',
    'pg_stat_database_blks_read{database_id="db-1",name="a",datname="default"} 10',
    'pg_database_size_bytes{database_id="db-1",name="a",datname="default"} 1000',
    'weird{label="with \\"quote\\" and \\\\"} 5',
    "not a sample line",
  ].join("\n");
  it("parses samples with escaped label values and skips comments and junk", () => {
    const samples = parsePrometheus(text);
    assert.equal(samples.length, 10);
    assert.deepEqual(samples[9], { name: "weird", labels: { label: 'with "quote" and \\' }, value: 5 });
  });
  it("sums one database's figures and turns two readings into rates", () => {
    const r1 = readingOf(parsePrometheus(text), "db-1", 1_000);
    assert.deepEqual(r1, { at: 1_000, up: true, connections: 3, transactions: 104, blocksHit: 90, blocksRead: 10, sizeBytes: 1000 });
    assert.deepEqual(rates(undefined, r1), { tps: null, cacheHitRate: 0.9 });
    const r2 = { ...r1, at: 6_000, transactions: 154, blocksHit: 190, blocksRead: 10 };
    assert.deepEqual(rates(r1, r2), { tps: 10, cacheHitRate: 1 });
    assert.equal(readingOf(parsePrometheus(text), "db-2", 0).up, false);
    assert.deepEqual(rates(r2, { ...r2, at: 7_000, transactions: 3 }).tps, null, "a restart resets the counters: no negative rate");
  });
});

describe("console: sleep and wake figures from ccpd's /metrics", () => {
  it("counts wakes and suspends, the mean wake time and the bucket that holds the slowest", () => {
    const text = [
      "# TYPE ccpd_instance_wakes_total counter",
      "ccpd_instance_wakes_total 3",
      "ccpd_instance_suspends_total 4",
      'ccpd_instance_wake_duration_seconds_bucket{le="0.1"} 0',
      'ccpd_instance_wake_duration_seconds_bucket{le="0.5"} 2',
      'ccpd_instance_wake_duration_seconds_bucket{le="1"} 3',
      'ccpd_instance_wake_duration_seconds_bucket{le="+Inf"} 3',
      "ccpd_instance_wake_duration_seconds_sum 1.5",
      "ccpd_instance_wake_duration_seconds_count 3",
    ].join("\n");
    assert.deepEqual(lifecycleOf(parsePrometheus(text)), { wakes: 3, suspends: 4, meanWakeSeconds: 0.5, slowestWakeUnderSeconds: 1 });
  });
  it("has no wake time before the first wake, and none past the last finite bucket", () => {
    assert.deepEqual(lifecycleOf(parsePrometheus("ccpd_instance_wake_duration_seconds_count 0\nccpd_instance_wake_duration_seconds_sum 0")), {
      wakes: 0,
      suspends: 0,
      meanWakeSeconds: null,
      slowestWakeUnderSeconds: null,
    });
    const slow = 'ccpd_instance_wake_duration_seconds_bucket{le="1"} 0\nccpd_instance_wake_duration_seconds_bucket{le="+Inf"} 1\nccpd_instance_wake_duration_seconds_count 1\nccpd_instance_wake_duration_seconds_sum 70';
    assert.equal(lifecycleOf(parsePrometheus(slow)).slowestWakeUnderSeconds, null);
  });
});

describe("console: branches", () => {
  const form = { name: " pr-42 ", atMode: "now" as const, at: "", expiryMode: "none" as const, expiry: "" };
  it("sends only the name for a branch from now without expiry", () => {
    assert.deepEqual(branchBody(form), { name: "pr-42" });
  });
  it("sends an LSN as Postgres writes it and refuses what is not one", () => {
    assert.deepEqual(branchBody({ ...form, atMode: "lsn", at: " 0/3000060a " }), { name: "pr-42", at: "0/3000060A" });
    const bad = branchBody({ ...form, atMode: "lsn", at: "3000060" });
    assert.ok("error" in bad && /not an LSN.*0\/3000060/.test(bad.error), JSON.stringify(bad));
  });
  it("turns the picker's local time into an RFC 3339 instant in UTC", () => {
    const local = "2026-04-12T14:30:05";
    const expected = new Date(2026, 3, 12, 14, 30, 5).toISOString();
    assert.equal(localToRfc3339(local), expected);
    assert.match(expected, /^2026-04-1\dT\d\d:30:05\.000Z$/);
    assert.deepEqual(branchBody({ ...form, atMode: "time", at: local }), { name: "pr-42", at: expected });
    assert.equal(localToRfc3339("yesterday"), undefined);
    assert.ok("error" in branchBody({ ...form, atMode: "time", at: "" }));
  });
  it("sends a TTL or an expiry instant, and says how to write a TTL", () => {
    assert.deepEqual(branchBody({ ...form, expiryMode: "ttl", expiry: "2h" }), { name: "pr-42", ttl: "2h" });
    assert.deepEqual(branchBody({ ...form, expiryMode: "expires_at", expiry: "2026-04-13T09:00" }), { name: "pr-42", expires_at: new Date(2026, 3, 13, 9, 0).toISOString() });
    for (const ttl of ["2 hours", "0h", "h", "-1d"]) {
      const r = branchBody({ ...form, expiryMode: "ttl", expiry: ttl });
      assert.ok("error" in r && r.error.includes("90s, 30m, 2h or 7d"), `${ttl}: ${JSON.stringify(r)}`);
    }
    assert.ok("error" in branchBody({ ...form, name: "  " }));
  });
  it("finds a parent's branches and names a branch's parent (its id once the parent is gone)", () => {
    const list = [
      { id: "db-1", name: "shop" },
      { id: "db-2", name: "pr-1", parent_id: "db-1" },
      { id: "db-3", name: "pr-2", parent_id: "db-1" },
      { id: "db-4", name: "orphan", parent_id: "db-9" },
    ];
    assert.deepEqual(branchesOf(list, "db-1").map((d) => d.name), ["pr-1", "pr-2"]);
    assert.deepEqual(branchesOf(list, "db-2"), []);
    assert.equal(branchOfLabel(list[1] as (typeof list)[number], list), "branch of shop");
    assert.equal(branchOfLabel(list[3] as (typeof list)[number], list), "branch of db-9");
    assert.equal(branchOfLabel(list[0] as (typeof list)[number], list), undefined);
    assert.deepEqual(branchesFromConflict({ code: "conflict", branches: ["db-3", "db-7", 5] }, list), ["pr-2", "db-7"]);
    assert.deepEqual(branchesFromConflict({ code: "conflict" }, list), []);
  });
});
