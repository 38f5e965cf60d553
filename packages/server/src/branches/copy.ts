import { chownSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync, type Dirent } from "node:fs";
import { codecPool } from "../backups/codec-pool.js";
import path from "node:path";
import { backupSegments } from "../backups/service.js";
import { WAL_SEGMENT } from "../backups/store.js";
import { withAdmin } from "../databases/admin-connection.js";
import { eachLimit, listDataFiles, makeDirs, syncFilesystem } from "../backups/files.js";
import type { FileOwner, InstanceEndpoint } from "../runtime/driver.js";

/** Files handed to the codec pool at once (it runs one per worker; the rest wait in its queue). */
const PARALLEL_FILES = 8;
/** pg_backup_start … pg_backup_stop spans the whole copy; a big parent takes a while. */
const COPY_SESSION_TIMEOUT_MS = 6 * 60 * 60 * 1000;

/** Where a copy's data ends, in the parent's history. */
export interface CopyPoint {
  /** The parent's WAL position the copy is consistent at (recovery replays to it). */
  readonly lsn: string;
  /** The parent's clock at that position. */
  readonly at: Date;
  /**
   * Every WAL segment recovery needs is in the copy's pg_wal (copied from the
   * parent's pg_wal, or its archive where a checkpoint recycled it meanwhile):
   * the first start replays from there as a standby with no restore_command,
   * and never stages the parent's whole archive. False (or absent): it needs the archive.
   */
  readonly walInPgWal?: boolean;
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
 * that makes the first start recover to the consistent point. A segment a
 * checkpoint recycled during the copy comes from the parent's archive
 * (`archiveDir`: it is archived before it is recycled); should one be in
 * neither, the first start reads the archive (restore_command).
 */
export async function copyRunning(endpoint: InstanceEndpoint, dataDir: string, target: string, runAs: FileOwner | undefined, label: string, archiveDir: string): Promise<CopyPoint> {
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
      return { startWal: start.rows[0]?.wal ?? "", stopWal: s.wal, lsn: s.lsn, at: s.at };
    },
    COPY_SESSION_TIMEOUT_MS,
  );
  const walInPgWal = await gatherWal(path.join(dataDir, "pg_wal"), archiveDir, target, runAs, point);
  await syncFilesystem(target);
  return { lsn: point.lsn, at: point.at, walInPgWal };
}

/**
 * The WAL a live copy needs into its pg_wal: the segments from the backup's
 * start to its stop (same timeline) and every timeline history file, from the
 * parent's pg_wal; a segment a checkpoint recycled meanwhile from the parent's
 * archive, where it went first. Then the marker of the first start: standby.signal
 * when every segment is there (replay from pg_wal alone is a standby's: archive
 * recovery insists on a restore_command; it promotes at the target), else
 * recovery.signal (the first start reads the archive). Resolves to which.
 */
export async function gatherWal(
  pgWal: string,
  archiveDir: string,
  target: string,
  runAs: FileOwner | undefined,
  point: { startWal: string; stopWal: string; lsn: string },
): Promise<boolean> {
  const timeline = point.startWal.slice(0, 8);
  const wal = readdirSync(pgWal).filter((n) => n.endsWith(".history") || (WAL_SEGMENT.test(n) && n.startsWith(timeline) && n >= point.startWal && n <= point.stopWal));
  const into = path.join(target, "pg_wal");
  await eachLimit(wal, PARALLEL_FILES, async (n) => void (await cloneFile(path.join(pgWal, n), path.join(into, n), runAs)));
  const segmentBytes = [into, archiveDir].map((d) => statSync(path.join(d, point.startWal), { throwIfNoEntry: false })?.size).find((n) => n);
  const needed = backupSegments(point.startWal, point.lsn, segmentBytes) ?? [];
  const missing = needed.filter((n) => !existsSync(path.join(into, n)));
  await eachLimit(missing, PARALLEL_FILES, async (n) => void (await cloneFile(path.join(archiveDir, n), path.join(into, n), runAs)));
  const complete = needed.length > 0 && needed.every((n) => existsSync(path.join(into, n)));
  writeOwned(path.join(target, complete ? "standby.signal" : "recovery.signal"), "", runAs);
  return complete;
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
