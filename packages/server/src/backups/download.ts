import { createReadStream, statSync } from "node:fs";
import path from "node:path";
import { Readable, type Writable } from "node:stream";
import tar from "tar-stream";
import { checked } from "./codec.js";
import { storedPath } from "./files.js";
import type { Manifest } from "./service.js";
import { WAL_SEGMENT } from "./store.js";

/**
 * A base backup as one tar stream that plain PostgreSQL binaries of the same
 * major version start from (README: "Take your data with you"): the data files
 * (decompressed, each checked against its manifest checksum as it streams; a
 * mismatch ends the stream with an error instead of a quiet bad archive), the
 * backup_label, and in pg_wal/ the archived WAL from the backup's start up to
 * the newest segment archived, so crash recovery from the label reaches
 * consistency (and beyond, to the latest archived state) without a restore_command.
 */
/** Write a Node stream into a tar entry (tar-stream's streams are streamx, not Node's), keeping back-pressure. */
async function fill(entry: Writable, source: AsyncIterable<Buffer>, onChunk?: (b: Buffer) => void): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    entry.once("finish", () => resolve());
    entry.once("error", reject);
  });
  // A source that fails mid-entry (a corrupt backup file) destroys the pack, and so the entry: that error is the source's, already on its way.
  done.catch(() => undefined);
  for await (const chunk of source) {
    onChunk?.(chunk);
    if (!entry.write(chunk)) await new Promise((r) => entry.once("drain", r));
  }
  entry.end();
  await done;
}

/**
 * A base backup as one tar stream that plain PostgreSQL binaries of the same
 * major version start from (README: "Take your data with you"): the data files
 * (decompressed, each checked against its manifest checksum as it streams; a
 * mismatch ends the stream with an error, never a quietly bad archive), the
 * backup_label, and in pg_wal/ the archived WAL from the backup's start on, so
 * crash recovery from the label reaches consistency (and replays on to the
 * newest archived segment) without a restore_command.
 */
export function backupArchive(manifest: Manifest, filesDir: string, walDir: string, walNames: readonly string[]): Readable {
  const pack = tar.pack();
  const mtime = new Date();
  const startWal = /\(file ([0-9A-F]{24})\)/.exec(manifest.backup_label)?.[1] ?? "";
  const timeline = startWal.slice(0, 8);
  void (async () => {
    const add = (header: { name: string; type?: "directory"; mode?: number }, content = "") =>
      new Promise<void>((resolve, reject) => void pack.entry({ mtime, mode: 0o600, ...header }, content, (err) => (err ? reject(err) : resolve())));
    for (const dir of manifest.dirs) await add({ name: `${dir}/`, type: "directory", mode: 0o700 });
    for (const f of manifest.files) {
      const entry = pack.entry({ name: f.path, size: f.size, mtime, mode: 0o600 }) as unknown as Writable;
      await fill(entry, checked(storedPath(filesDir, f), f));
    }
    await add({ name: "backup_label" }, manifest.backup_label);
    if (manifest.tablespace_map) await add({ name: "tablespace_map" }, manifest.tablespace_map);
    const wal = walNames.filter((n) => n.endsWith(".history") || (WAL_SEGMENT.test(n) && n.startsWith(timeline) && n >= startWal));
    for (const n of wal) {
      const file = path.join(walDir, n);
      const entry = pack.entry({ name: `pg_wal/${n}`, size: statSync(file).size, mtime, mode: 0o600 }) as unknown as Writable;
      await fill(entry, createReadStream(file));
    }
    pack.finalize();
  })().catch((err: Error) => pack.destroy(err));
  // A Node stream for Fastify (reply.send pipes it); an error destroys it, so the client sees a cut response.
  return Readable.from(pack as AsyncIterable<Buffer>);
}
