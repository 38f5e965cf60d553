import { readdirSync, type Dirent } from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import { addStats, checked, PACK_CODEC, settled, storedSuffix, type Codec, type CodecStats } from "./codec.js";
import { codecPool } from "./codec-pool.js";
import { execFileAsync, makeDir } from "../runtime/process/fs-util.js";
import type { FileOwner as RunAs } from "../runtime/driver.js";

export interface ManifestFile {
  readonly path: string;
  readonly size: number;
  /** sha256 of the file's content (uncompressed), hex. */
  readonly sha256: string;
  /** How it is stored (codec.ts); absent in backups taken before ccp-lz4: gzip. */
  readonly codec?: Codec;
}

export { ChecksumMismatch } from "./codec.js";
export { CodecWorkerFailed } from "./codec-pool.js";

/**
 * What a base backup leaves out (Postgres docs, "Backup Exclusions"): files
 * rebuilt or meaningless on restore. Directories in DIR_CONTENTS are kept, empty.
 */
const SKIP_FILES = new Set(["postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "pg_internal.init", "pg_ident.conf"]);
const DIR_CONTENTS = new Set(["pg_wal", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans"]);

/** Relative paths of every file a base backup copies, and the directories to recreate. */
export function listDataFiles(dataDir: string): { files: string[]; dirs: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = (rel: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(path.join(dataDir, rel), { withFileTypes: true });
    } catch {
      return; // removed while we walked (e.g. a dropped table)
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        dirs.push(r);
        if (!DIR_CONTENTS.has(r) && !e.name.startsWith("pgsql_tmp")) walk(r);
      } else if (e.isFile() && !SKIP_FILES.has(e.name) && !e.name.startsWith("pgsql_tmp")) {
        files.push(r);
      }
    }
  };
  walk("");
  return { files, dirs };
}

/**
 * Copy one file into the backup as `dst` (ccp-lz4, codec.ts: fast enough that
 * the copy keeps up with a plain `cp`), hashing the original content on the
 * way, in a codec worker (codec-pool.ts). A file that vanished since the
 * listing (dropped relation) is skipped: WAL replay recreates the truth.
 * `stats` adds up where the time went.
 */
export async function packFile(src: string, dst: string, stats?: CodecStats): Promise<ManifestFile | undefined> {
  const reply = await codecPool.run({ op: "pack", src, dst });
  if (stats && reply.stats) addStats(stats, reply.stats);
  return reply.packed && { path: "", size: reply.packed.size, sha256: reply.packed.sha256, codec: PACK_CODEC };
}

/** Where a manifest file is stored in a backup's files/ directory. */
export const storedPath = (filesDir: string, f: ManifestFile): string => path.join(filesDir, `${f.path}${storedSuffix(f.codec)}`);

/**
 * Decode one backup file to `dst` (or nowhere) in one pass (read → decompress
 * → hash → write, no fsync: the caller syncs the whole tree once), checking its
 * sha256 and size against the manifest; throws ChecksumMismatch otherwise.
 * ccp-lz4 files go to a codec worker (codec-pool.ts); old gzip ones stream
 * here, on the main thread and the libuv pool.
 */
export async function unpackFile(src: string, dst: string | undefined, expected: ManifestFile, runAs: RunAs | undefined, stats?: CodecStats): Promise<void> {
  if (expected.codec === "lz4") {
    const owner = runAs && { uid: runAs.uid, gid: runAs.gid };
    const reply = await codecPool.run({ op: "unpack", src, dst, expected: { path: expected.path, size: expected.size, sha256: expected.sha256 }, owner });
    if (stats && reply.stats) addStats(stats, reply.stats);
    return;
  }
  const out = dst ? await open(dst, "w", 0o600) : undefined;
  try {
    const writes: Promise<unknown>[] = [];
    let position = 0;
    for await (const chunk of checked(src, expected)) {
      if (out) {
        writes.push(settled(out.write(chunk, 0, chunk.length, position)));
        if (writes.length >= 4) await writes.shift();
      }
      position += chunk.length;
    }
    await Promise.all(writes);
    if (out && runAs) await out.chown(runAs.uid, runAs.gid);
  } finally {
    await out?.close();
  }
}

/** fsync a file by path (backups and manifests are durable before they count). */
export async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Flush every dirty page of the filesystem holding `dir` (coreutils `sync -f`: syncfs(2)). */
export async function syncFilesystem(dir: string): Promise<void> {
  await execFileAsync("sync", ["-f", dir]);
}

export function makeDirs(root: string, rels: readonly string[], runAs: RunAs | undefined): void {
  for (const rel of rels) makeDir(path.join(root, rel), 0o700, runAs);
}

/** Run `fn` over items with at most `n` at once; the first failure stops the rest from starting and rejects once those in flight have settled. */
export async function eachLimit<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    // After a failure nothing new starts: the caller is about to remove what the others write.
    while (next < items.length && !failed) {
      const i = next++;
      try {
        await fn(items[i] as T);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  // Every worker settles before the first failure is thrown: the caller removes what they write (a partial restore),
  // and a file still being written under that removal made it fail with ENOTEMPTY (seen with a restore out of space).
  const settled = await Promise.allSettled(Array.from({ length: Math.min(n, items.length) }, worker));
  const failure = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failure) throw failure.reason;
}
