import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CcpError } from "../src/errors.js";
import { DATABASE_ID_PATTERN, hashSecret, newDatabaseId, newDatabaseToken, secretMatches } from "../src/ids.js";
import { validateDatabaseName } from "../src/names.js";
import { encodeParam } from "../src/gateway/session.js";
import { createRequire } from "node:module";

describe("database names", () => {
  for (const ok of ["abc", "my-app-db", "a_b-c9", `a${"b".repeat(31)}`]) {
    it(`accepts ${ok}`, () => assert.equal(validateDatabaseName(ok), ok));
  }
  for (const bad of ["", "ab", `a${"b".repeat(32)}`, "Abc", "9abc", "_abc", "a b", "a.b", "abc\n"]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => validateDatabaseName(bad), (e: unknown) => e instanceof CcpError && e.code === "invalid_name" && e.status === 400);
    });
  }
  it("refuses a non-string", () => assert.throws(() => validateDatabaseName(42), CcpError));
});

describe("ids and secrets", () => {
  it("makes ids of the seed's shape", () => {
    for (let i = 0; i < 100; i++) assert.match(newDatabaseId(), DATABASE_ID_PATTERN);
  });
  it("makes 256-bit tokens that differ", () => {
    const a = newDatabaseToken();
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.notEqual(a, newDatabaseToken());
  });
  it("matches a secret only against its own hash", () => {
    const t = newDatabaseToken();
    assert.equal(secretMatches(t, hashSecret(t)), true);
    assert.equal(secretMatches(`${t}x`, hashSecret(t)), false);
    assert.equal(secretMatches(t, "not-hex"), false);
  });
});

describe("gateway parameter encoding", () => {
  // node-postgres' own value encoding (untyped, hence require): the reference for JSON-born values.
  const { prepareValue } = createRequire(import.meta.url)("pg/lib/utils.js") as { prepareValue(v: unknown): unknown };
  const values: unknown[] = [
    null,
    0,
    -1.5,
    1e21,
    2 ** 53 + 2,
    true,
    false,
    "",
    "plain",
    'quote " and \\ backslash',
    "ünïcödé ✓",
    [],
    [1, 2, 3],
    [null, "a", 'b"c', "d\\e"],
    [[1, 2], [3, null]],
    [{ a: 1 }, { b: ["x"] }],
    [true, false],
    { a: 1, b: [1, 2], c: { d: null } },
    {},
  ];
  for (const v of values) {
    it(`encodes ${JSON.stringify(v)} as node-postgres does`, () => assert.equal(encodeParam(v), prepareValue(v)));
  }
});
