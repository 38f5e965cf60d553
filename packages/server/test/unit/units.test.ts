import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CcpError } from "../../src/errors.js";
import { DATABASE_ID_PATTERN, hashSecret, newDatabaseId, newDatabaseToken, secretMatches } from "../../src/ids.js";
import { validateDatabaseName } from "../../src/names.js";
import { encodeParam } from "../../src/gateway/session.js";
import { createRequire } from "node:module";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { CancelKeys } from "../../src/wire/backend.js";
import { makeVerifier, parseVerifier, passwordMatches, ScramError, ScramExchange, tlsServerEndPoint } from "../../src/wire/scram.js";
import { formatDuration, parseSuspendAfter } from "../../src/runtime/suspend-after.js";
import { copyArchive } from "../../src/runtime/process/fs-util.js";
import { eachLimit } from "../../src/backups/files.js";

describe("suspend timeouts", () => {
  for (const [text, ms] of [["30s", 30_000], ["5m", 300_000], ["2h", 7_200_000], ["1d", 86_400_000], ["1500ms", 1_500], [" 10M ", 600_000], ["never", null]] as const) {
    it(`reads ${JSON.stringify(text)}`, () => assert.equal(parseSuspendAfter(text), ms));
  }
  for (const bad of ["", "5", "0s", "999ms", "5 m", "-1m", "1.5h", "5min", "forever", 300, null]) {
    it(`refuses ${JSON.stringify(bad)} with a 400 that shows the form`, () => {
      assert.throws(() => parseSuspendAfter(bad), (e: unknown) => e instanceof CcpError && e.status === 400 && /30s, 5m, 2h/.test(e.message));
    });
  }
  it("prints the largest whole unit", () => {
    assert.deepEqual([300_000, 90_000, 86_400_000, 1_500, null].map(formatDuration), ["5m", "90s", "1d", "1500ms", "never"]);
  });
});

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

describe("SCRAM channel binding (tls-server-end-point)", () => {
  const haveOpenssl = spawnSync("openssl", ["version"], { stdio: "ignore" }).status === 0;
  /** A self-signed certificate's DER, made by openssl with this key type and digest. */
  const certificate = (keyArgs: string[], digest: string | undefined): Buffer => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "ccp-cert-"));
    try {
      const args = ["req", "-x509", "-nodes", "-subj", "/CN=test", "-days", "1", ...keyArgs, "-keyout", path.join(dir, "k.pem"), "-outform", "DER", "-out", path.join(dir, "c.der")];
      const r = spawnSync("openssl", digest ? [...args, `-${digest}`] : args, { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return readFileSync(path.join(dir, "c.der"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const cases: [string, string[], string | undefined, string | undefined][] = [
    ["RSA, SHA-256", ["-newkey", "rsa:2048"], "sha256", "sha256"],
    ["RSA, SHA-1 (hashed with SHA-256, RFC 5929)", ["-newkey", "rsa:2048"], "sha1", "sha256"],
    ["RSA, SHA-512", ["-newkey", "rsa:2048"], "sha512", "sha512"],
    ["ECDSA P-384, SHA-384", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"], "sha384", "sha384"],
    ["Ed25519 (no hash: -PLUS not offered)", ["-newkey", "ed25519"], undefined, undefined],
  ];
  for (const [label, keyArgs, digest, expected] of cases) {
    it(`hashes a certificate signed with ${label}`, { skip: haveOpenssl ? false : "no openssl" }, () => {
      const der = certificate(keyArgs, digest);
      assert.deepEqual(tlsServerEndPoint(der), expected ? createHash(expected).update(der).digest() : undefined);
    });
  }

  it("refuses a client that could bind but thinks the server cannot (y flag, downgrade)", () => {
    const exchange = new ScramExchange(parseVerifier(makeVerifier("pw")), { plus: false, binding: Buffer.alloc(32) });
    assert.throws(() => exchange.first("y,,n=*,r=abc"), (e: unknown) => e instanceof ScramError && e.protocol && /negotiation error/.test(e.message));
    const withoutTls = new ScramExchange(parseVerifier(makeVerifier("pw")), { plus: false, binding: undefined });
    assert.match(withoutTls.first("y,,n=*,r=abc"), /^r=abc/);
  });

  it("checks a cleartext password against the SCRAM verifier", async () => {
    const v = parseVerifier(makeVerifier("correct horse"));
    assert.equal(await passwordMatches(v, "correct horse"), true);
    assert.equal(await passwordMatches(v, "correct horsE"), false);
  });
});

describe("wire cancel keys", () => {
  /** Two fake instances' unix sockets; each records the CancelRequests (pid, secret) it receives. */
  const instances = async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "ccp-cancel-"));
    const received = new Map<string, string[]>();
    const servers = await Promise.all(
      ["one", "two"].map(
        (name) =>
          new Promise<net.Server>((resolve) => {
            received.set(name, []);
            const server = net.createServer((s) => s.on("data", (d: Buffer) => received.get(name)?.push(`${d.readInt32BE(8)}:${d.readInt32BE(12)}`)));
            server.listen(path.join(dir, name), () => resolve(server));
          }),
      ),
    );
    return { dir, received, servers };
  };

  // Regression (issue 18, item 5): clients now get the backend's real pid, and pids repeat across instances.
  it("routes a cancel on pid and secret together when two instances' backends share a pid", async () => {
    const { dir, received, servers } = await instances();
    try {
      const keys = new CancelKeys();
      const secret = (n: number) => Buffer.from([0, 0, 0, n]);
      const one = keys.issue(path.join(dir, "one"), 4242, secret(1));
      const two = keys.issue(path.join(dir, "two"), 4242, secret(2));
      const clientSecret = (n: number) => {
        const b = Buffer.alloc(4);
        b.writeInt32BE(n);
        return b;
      };
      keys.cancel(4242, clientSecret(two.secret));
      keys.cancel(4243, clientSecret(one.secret)); // right secret, wrong pid: nothing
      keys.cancel(4242, clientSecret(one.secret ^ 1)); // right pid, wrong secret: nothing
      for (let i = 0; i < 200 && (received.get("two")?.length ?? 0) === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(received.get("two"), ["4242:2"]);
      // Once forgotten (the session ended), the key cancels nothing.
      one.forget();
      keys.cancel(4242, clientSecret(one.secret));
      keys.cancel(4242, clientSecret(two.secret));
      for (let i = 0; i < 200 && (received.get("two")?.length ?? 0) < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(received.get("one"), []);
      assert.deepEqual(received.get("two"), ["4242:2", "4242:2"]);
    } finally {
      for (const s of servers) s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("copying a live WAL archive", () => {
  it("copies the finished WAL files only (regression: `cp -a` of a parent's archive under writes failed on basic_archive's vanished archtemp file, and the branch answered 500)", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "ccp-archive-"));
    try {
      const src = path.join(dir, "wal");
      mkdirSync(src);
      const wal = ["000000010000000000000001", "000000010000000000000002.partial", "000000010000000000000001.00000028.backup", "00000002.history"];
      for (const n of [...wal, "archtemp.000000010000000000000003.12.1796161704810", "notes.txt"]) writeFileSync(path.join(src, n), n);
      await copyArchive(src, path.join(dir, "copy"));
      assert.deepEqual(readdirSync(path.join(dir, "copy")).sort(), [...wal].sort());
      assert.equal(readFileSync(path.join(dir, "copy", "00000002.history"), "utf8"), "00000002.history");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("eachLimit", () => {
  it("a partial restore's removal failed with ENOTEMPTY (eachLimit rejected while other files were still being written): it rejects only once the tasks in flight have settled", async () => {
    const settled: string[] = [];
    const run = eachLimit(["fails", "slow", "never"], 2, async (item) => {
      if (item === "fails") throw new Error("ENOSPC");
      await new Promise((r) => setTimeout(r, 50));
      settled.push(item);
    });
    await assert.rejects(run, /ENOSPC/);
    assert.deepEqual(settled, ["slow"], "the file in flight was done before the rejection; nothing new started after the failure");
  });
});
