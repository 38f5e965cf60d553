import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { columnsInScope } from "../src/lib/completion.js";
import { csvField, toCsv, toJson, toJsonRows } from "../src/lib/csv.js";
import { parsePrometheus, rates, readingOf } from "../src/lib/prometheus.js";
import { browseSql, quoteIdent, quoteLiteral, updateRowSql } from "../src/lib/sql-text.js";
import { errorOffset, splitStatements, statementAt } from "../src/lib/statements.js";

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
