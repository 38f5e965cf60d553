import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { CHUNK } from "../src/backups/codec.js";
import { ChecksumMismatch, CodecWorkerFailed, packFile, unpackFile, type ManifestFile } from "../src/backups/files.js";
import { CODEC_WORKERS, codecPool } from "../src/backups/codec-pool.js";
import { backupSegments } from "../src/backups/service.js";
import { prng } from "./support/security.js";


const SEED = Number(process.env["CCP_TEST_SEED"] ?? Date.now() % 1_000_000);

/** Content like a data file: compressible pages, incompressible stretches, zeroes. */
function content(size: number, rand: () => number, kind: "text" | "noise" | "mixed" | "zero"): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; ) {
    const piece = kind === "mixed" ? (["text", "noise", "zero"] as const)[Math.floor(rand() * 3)] : kind;
    const end = Math.min(size, i + 1 + Math.floor(rand() * 300_000));
    for (; i < end; i++) b[i] = piece === "noise" ? Math.floor(rand() * 256) : piece === "text" ? 97 + ((i * 7) % 13) : 0;
  }
  return b;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("backup file codec (ccp-lz4 and the old gzip)", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ccp-codec-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;

  async function pack(original: Buffer): Promise<{ stored: string; entry: ManifestFile }> {
    const src = path.join(dir, `src-${++n}`);
    writeFileSync(src, original);
    const stored = `${src}.lz4`;
    const packed = await packFile(src, stored);
    assert.ok(packed);
    return { stored, entry: { ...packed, path: `file-${n}` } };
  }

  it(`round-trips files of every shape through ccp-lz4 (seed ${SEED})`, async () => {
    const rand = prng(SEED);
    const sizes = [0, 1, 8192, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 2 * CHUNK + 12_345];
    for (const size of sizes) {
      for (const kind of ["text", "noise", "mixed", "zero"] as const) {
        const original = content(size, rand, kind);
        const { stored, entry } = await pack(original);
        assert.equal(entry.codec, "lz4");
        assert.equal(entry.size, size, `seed ${SEED}`);
        assert.equal(entry.sha256, sha256(original), `seed ${SEED}`);
        const out = path.join(dir, `out-${n}`);
        await unpackFile(stored, out, entry, undefined);
        assert.ok(readFileSync(out).equals(original), `${kind} ${size} bytes, seed ${SEED}`);
        if (kind === "noise" && size >= CHUNK) assert.ok(statSync(stored).size < size + 1024, "incompressible chunks are stored as they are");
        if (kind === "zero" && size >= CHUNK) assert.ok(statSync(stored).size < size / 50, "zeroes compress");
      }
    }
  });

  it(`refuses a corrupted, truncated or swapped ccp-lz4 file while streaming (seed ${SEED})`, async () => {
    const rand = prng(SEED + 1);
    const original = content(5 * CHUNK + 777, rand, "mixed");
    const { stored, entry } = await pack(original);
    const good = readFileSync(stored);
    const out = path.join(dir, "corrupt-out");
    const damaged: [string, Buffer][] = [
      ["magic", Buffer.concat([Buffer.from("XXXXXXXX"), good.subarray(8)])],
      ["truncated in the middle", good.subarray(0, Math.floor(good.length / 2))],
      ["last chunk missing", good.subarray(0, good.length - 1)],
      ["appended garbage", Buffer.concat([good, Buffer.from("more")])],
    ];
    for (let i = 0; i < 20; i++) {
      const bad = Buffer.from(good);
      const at = 8 + Math.floor(rand() * (bad.length - 8));
      bad[at] = (bad[at] as number) ^ (1 + Math.floor(rand() * 255));
      damaged.push([`byte ${at} flipped`, bad]);
    }
    for (const [what, bytes] of damaged) {
      writeFileSync(stored, bytes);
      await assert.rejects(unpackFile(stored, out, entry, undefined), ChecksumMismatch, `${what}, seed ${SEED}`);
    }
    // A well-formed file with other content: only the checksum can tell.
    const other = await pack(content(entry.size, prng(SEED + 2), "mixed"));
    await assert.rejects(unpackFile(other.stored, out, entry, undefined), /does not match the backup's manifest/);
  });

  it("still reads gzip files (backups taken before ccp-lz4), and refuses a corrupt one", async () => {
    const original = content(2 * CHUNK + 99, prng(SEED + 3), "mixed");
    const gz = path.join(dir, "old.gz");
    writeFileSync(gz, gzipSync(original, { level: 1 }));
    const entry: ManifestFile = { path: "old", size: original.length, sha256: sha256(original) }; // no codec: gzip
    await unpackFile(gz, path.join(dir, "old-out"), entry, undefined);
    assert.ok(readFileSync(path.join(dir, "old-out")).equals(original));
    const bad = readFileSync(gz);
    bad.fill(0x55, Math.floor(bad.length / 2), Math.floor(bad.length / 2) + 64);
    writeFileSync(gz, bad);
    await assert.rejects(unpackFile(gz, path.join(dir, "old-out"), entry, undefined), ChecksumMismatch);
  });

  it("a stored file that is missing is an ENOENT the restore reports, in both codecs (regression: the gzip read stream's error went unhandled)", async () => {
    const entry: ManifestFile = { path: "gone", size: 1, sha256: sha256(Buffer.from("x")) };
    await assert.rejects(unpackFile(path.join(dir, "gone.gz"), path.join(dir, "gone-out"), entry, undefined), { code: "ENOENT" });
    await assert.rejects(unpackFile(path.join(dir, "gone.lz4"), path.join(dir, "gone-out"), { ...entry, codec: "lz4" }, undefined), { code: "ENOENT" });
  });

  it("a codec worker that dies under a file is a CodecWorkerFailed for that file only; the pool replaces it and goes on", async () => {
    const original = content(3 * CHUNK + 5, prng(SEED + 4), "mixed");
    const { stored, entry } = await pack(original);
    codecPool.crashOn(stored);
    const out = path.join(dir, "crash-out");
    const results = await Promise.allSettled([unpackFile(stored, out, entry, undefined), ...Array.from({ length: 2 * CODEC_WORKERS }, () => pack(original))]);
    assert.ok(results[0]?.status === "rejected" && results[0].reason instanceof CodecWorkerFailed, "the file whose worker died is refused");
    assert.ok(results.slice(1).every((r) => r.status === "fulfilled"), "the files queued with it are done by the other and the new workers");
    await unpackFile(stored, out, entry, undefined);
    assert.ok(readFileSync(out).equals(original));
  });

  it("names the WAL segments a backup spans (1 MiB and 16 MiB segments, an LSN on a boundary ends the previous one)", () => {
    assert.deepEqual(backupSegments("000000010000000000000003", "0/300100", 2 ** 20), ["000000010000000000000003"]);
    assert.deepEqual(backupSegments("000000010000000000000003", "0/500000", 2 ** 20), ["000000010000000000000003", "000000010000000000000004"]);
    assert.deepEqual(backupSegments("0000000200000000000000FF", "0/10000028", 2 ** 20), ["0000000200000000000000FF", "000000020000000000000100"]);
    assert.deepEqual(backupSegments("0000000100000000000000FF", "1/000028", 16 * 2 ** 20), ["0000000100000000000000FF", "000000010000000100000000"]);
    assert.equal(backupSegments("000000010000000000000003", "0/300100", undefined), undefined);
    assert.equal(backupSegments("000000010000000000000009", "0/300100", 2 ** 20), undefined, "a stop before the start is no range");
  });
});
