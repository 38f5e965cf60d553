import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CcpError } from "../src/errors.js";
import { DATABASE_ID_PATTERN, hashSecret, newDatabaseId, newDatabaseToken, secretMatches } from "../src/ids.js";
import { validateDatabaseName } from "../src/names.js";

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
