import { chownSync, mkdirSync, readdirSync, rmSync, writeFileSync, type Dirent } from "node:fs";
import { codecPool } from "../backups/codec-pool.js";
import path from "node:path";
import { withAdmin } from "../databases/admin-connection.js";
import { eachLimit, listDataFiles, makeDirs, syncFilesystem } from "../backups/files.js";
import type { FileOwner, InstanceEndpoint } from "../runtime/driver.js";

/** Files handed to the codec pool at once (it runs one per worker; the rest wait in its queue). */
const PARALLEL_FILES = 8;
/** pg_backup_start … pg_backup_stop spans the whole copy; a big parent takes a while. */
const COPY_SESSION_TIMEOUT_MS = 6 * 60 * 60 * 1000;
const WAL_SEGMENT = /^[0-9A-F]{24}$/;

/** Where a copy's data ends, in the parent's history. */
export interface CopyPoint {
  /** The parent's WAL position the copy is consistent at (recovery replays to it). */
  readonly lsn: string;
  /** The parent's clock at that position. */
  readonly at: Date;
}

/**
 * Copy one file, as a reflink where the filesystem can (FICLONE on XFS/btrfs),
 * else in the kernel, in a codec worker (backups/codec-pool.ts). A file gone since the listing (a dropped
 * relation) is skipped: WAL replay makes the truth.
 */
async function cloneFile(src: string, dst: string, runAs: FileOwner | undefined): Promise<number> {
  try {
    await codecPool.run({ op: "copy", src, dst, owner: runAs && { uid: runAs.uid, gid: runAs.gid } });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw err;
  }
  return 1;
}

function freshDir(target: string, runAs: FileOwner | undefined): void {
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target, { recursive: true, mode: 0o700 });
  if (runAs) chownSync(target, runAs.uid, runAs.gid);
}

function writeOwned(file: string, content: string, runAs: FileOwner | undefined): void {
  writeFileSync(file, content, { mode: 0o600 });
  if (runAs) chownSync(file, runAs.uid, runAs.gid);
}

/**
 * A consistent copy of a RUNNING instance's data dir into `target`, without
 * stopping or blocking it: Postgres's non-exclusive backup mode
 * (pg_backup_start/stop in one admin session, as a base backup does), a file
 * copy, then the WAL written meanwhile from its pg_wal, and the backup_label
 * that makes the first start recover to the consistent point. WAL already
 * recycled into the archive comes from there (restore_command of the start).
 */
export async function copyRunning(endpoint: InstanceEndpoint, dataDir: string, target: string, runAs: FileOwner | undefined, label: string): Promise<CopyPoint> {
  freshDir(target, runAs);
  const point = await withAdmin(
    endpoint,
    "postgres",
    async (admin) => {
      const start = await admin.query<{ wal: string }>("SELECT pg_walfile_name(lsn) AS wal FROM pg_backup_start($1, true) AS lsn", [label]);
      const { files, dirs } = listDataFiles(dataDir);
      makeDirs(target, dirs, runAs);
      await eachLimit(files, PARALLEL_FILES, async (rel) => void (await cloneFile(path.join(dataDir, rel), path.join(target, rel), runAs)));
      // Not waiting for the archive: the WAL up to the stop point is copied from pg_wal below.
      const stop = await admin.query<{ lsn: string; wal: string; labelfile: string; spcmapfile: string | null; at: Date }>(
        "SELECT lsn::text, pg_walfile_name(lsn) AS wal, labelfile, spcmapfile, clock_timestamp() AS at FROM pg_backup_stop(false)",
      );
      const s = stop.rows[0] as { lsn: string; wal: string; labelfile: string; spcmapfile: string | null; at: Date };
      // A commit flushes every WAL record before it, the backup's end record included.
      await admin.query("SELECT pg_current_xact_id()");
      writeOwned(path.join(target, "backup_label"), s.labelfile, runAs);
      if (s.spcmapfile) writeOwned(path.join(target, "tablespace_map"), s.spcmapfile, runAs);
      writeOwned(path.join(target, "recovery.signal"), "", runAs);
      return { startWal: start.rows[0]?.wal ?? "", stopWal: s.wal, lsn: s.lsn, at: s.at };
    },
    COPY_SESSION_TIMEOUT_MS,
  );
  // The segments the copy spans, same timeline, and every timeline history file.
  const timeline = point.startWal.slice(0, 8);
  const wal = readdirSync(path.join(dataDir, "pg_wal")).filter(
    (n) => n.endsWith(".history") || (WAL_SEGMENT.test(n) && n.startsWith(timeline) && n >= point.startWal && n <= point.stopWal),
  );
  await eachLimit(wal, PARALLEL_FILES, async (n) => void (await cloneFile(path.join(dataDir, "pg_wal", n), path.join(target, "pg_wal", n), runAs)));
  await syncFilesystem(target);
  return { lsn: point.lsn, at: point.at };
}

/**
 * Copy a STOPPED instance's data dir (files at rest: a plain copy is
 * consistent, pg_wal included); the copy starts like the original would.
 */
export async function copyAtRest(dataDir: string, target: string, runAs: FileOwner | undefined): Promise<void> {
  freshDir(target, runAs);
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dataDir, rel), { withFileTypes: true }) as Dirent[]) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        dirs.push(r);
        walk(r);
      } else if (e.isFile() && e.name !== "postmaster.pid" && e.name !== "postmaster.opts") {
        files.push(r);
      }
    }
  };
  walk("");
  makeDirs(target, dirs, runAs);
  await eachLimit(files, PARALLEL_FILES, async (rel) => void (await cloneFile(path.join(dataDir, rel), path.join(target, rel), runAs)));
  await syncFilesystem(target);
}
