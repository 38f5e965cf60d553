import { readdirSync, type Dirent } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { checked, PACK_CODEC, packLz4, settled, storedSuffix, type Codec } from "./codec.js";
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
 * way. A file that vanished since the listing (dropped relation) is skipped:
 * WAL replay recreates the truth.
 */
export async function packFile(src: string, dst: string): Promise<ManifestFile | undefined> {
  let input: FileHandle;
  try {
    input = await open(src, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  try {
    const output = await open(dst, "w", 0o600);
    try {
      const { size, sha256 } = await packLz4(input, output);
      return { path: "", size, sha256, codec: PACK_CODEC };
    } finally {
      await output.close();
    }
  } finally {
    await input.close();
  }
}

/** Where a manifest file is stored in a backup's files/ directory. */
export const storedPath = (filesDir: string, f: ManifestFile): string => path.join(filesDir, `${f.path}${storedSuffix(f.codec)}`);

/**
 * Decode one backup file to `dst` (or nowhere) in one pass (read → decompress
 * → hash → write, no fsync: the caller syncs the whole tree once), checking its
 * sha256 and size against the manifest; throws ChecksumMismatch otherwise.
 */
export async function unpackFile(src: string, dst: string | undefined, expected: ManifestFile, runAs: RunAs | undefined): Promise<void> {
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

/** Run `fn` over items with at most `n` at once (the libuv pool compresses files in parallel). */
export async function eachLimit<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}
