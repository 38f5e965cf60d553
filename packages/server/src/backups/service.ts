import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import path from "node:path";
import type { BackupKind, BackupRow, Catalog } from "../catalog/catalog.js";
import type { CreatedDatabase, DatabaseService } from "../databases/service.js";
import type { Logger } from "../logger.js";
import { withAdmin } from "../databases/admin-connection.js";
import { CcpError } from "../errors.js";
import { Phases } from "../phases.js";
import { Instances, type Lease, type Quiet } from "../runtime/instances.js";
import { ChecksumMismatch, CodecWorkerFailed, eachLimit, fsyncPath, listDataFiles, makeDirs, packFile, storedPath, syncFilesystem, unpackFile, type ManifestFile } from "./files.js";
import { emptyStats, PACK_CODEC, storedSuffix, type CodecStats } from "./codec.js";
import { CODEC_WORKERS, codecPool } from "./codec-pool.js";
import { WAL_SEGMENT, type BackupStore } from "./store.js";
import { backupArchive } from "./download.js";
import { restoreToPointInTime } from "./pitr.js";
import type { Readable } from "node:stream";

export type { BackupKind } from "../catalog/catalog.js";

export interface BackupView {
  readonly id: string;
  readonly database_id: string;
  readonly kind: BackupKind;
  readonly status: string;
  readonly created_at: string;
  readonly finished_at: string | null;
  readonly size_bytes: number | null;
}

export interface Manifest {
  readonly format: 1;
  readonly id: string;
  readonly database_id: string;
  readonly pg_version: string;
  readonly start_lsn: string;
  readonly stop_lsn: string;
  readonly backup_label: string;
  readonly tablespace_map: string;
  readonly dirs: string[];
  readonly files: ManifestFile[];
}

export interface BackupServiceOptions {
  readonly catalog: Catalog;
  readonly instances: Instances;
  readonly store: BackupStore;
  readonly databases: DatabaseService;
  readonly log: Logger;
  /** How far back a point-in-time restore may go (the backups kept). */
  readonly retentionDays: number;
  /** Injected clock (scheduler and retention tests). */
  readonly now?: () => Date;
  /** Backup taken / failed / restored (observability: platform events and metrics). */
  readonly observer?: BackupObserver;
}

export interface BackupObserver {
  backupFinished(databaseId: string, backupId: string, kind: BackupKind, error: Error | undefined, seconds: number): void;
  restored(databaseId: string, backupId: string): void;
}

const BACKUP_ID = /^bkp-[0-9a-f]{8}$/;
/** Files handed to the codec pool at once: one queued behind each busy worker, so none waits for the main thread. */
const PARALLEL_CODEC = 2 * CODEC_WORKERS;
/** How long a backup waits for its last WAL segment to reach the archive, and how often it looks. */
const ARCHIVE_WAIT_MS = 30 * 60 * 1000;
const ARCHIVE_POLL_MS = 20;
/** Past this much archived WAL after a backup, a recovery fetches it through restore_command instead of copying it all first. */
const STAGE_WAL_MAX_BYTES = 8 * 2 ** 30;
/** Statement timeout of the backup's admin session: pg_backup_stop waits for the archiver. */
const BACKUP_SESSION_TIMEOUT_MS = 6 * 60 * 60 * 1000;
/** Replaying WAL can take a while; a restore's start-up gets this long. */
const RECOVERY_TIMEOUT_MS = 60 * 60 * 1000;

function view(r: BackupRow): BackupView {
  return {
    id: r.id,
    database_id: r.database_id,
    kind: r.kind,
    status: r.status,
    created_at: r.started_at.toISOString(),
    finished_at: r.finished_at?.toISOString() ?? null,
    size_bytes: r.size_bytes === null ? null : Number(r.size_bytes),
  };
}

const MiB = 2 ** 20;

/** A copy's time in the codec workers, summed over files (codec.ts CodecStats), for the log line. */
function workerTime(s: CodecStats, codecWhat: string, files: number): string {
  const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  return `in ${CODEC_WORKERS} workers, ${files} files: read ${sec(s.read)}, ${codecWhat} ${sec(s.codec)}, sha256 ${sec(s.hash)}, write ${sec(s.write)}, chown ${sec(s.chown)}, flush ${sec(s.flush)}; on a CPU ${sec(s.cpu)}, runnable but waiting for a CPU ${sec(s.waited)}`;
}

/** A codec worker died under a backup or restore: refused like a bad input (409), never a 500 that reads like a ccpd crash. */
function workerFailed(err: CodecWorkerFailed, what: string): CcpError {
  return new CcpError("conflict", `${what} was refused: ${err.message}; nothing was changed.`, { hint: "Retry; if it happens again, ccpd's log says why the worker stopped." });
}

/**
 * The WAL segment names a backup spans, on its own timeline: from its start
 * segment to the one holding its stop LSN (as pg_walfile_name names it: an LSN
 * on a segment boundary ends the previous one). `segmentBytes` is an archived
 * segment's size (ccp's are 1 MiB); undefined when it is not known.
 */
export function backupSegments(startWal: string, stopLsn: string, segmentBytes: number | undefined): string[] | undefined {
  const [hi, lo] = stopLsn.split("/");
  if (!segmentBytes || !(segmentBytes > 0) || hi === undefined || lo === undefined) return undefined;
  const perId = 2 ** 32 / segmentBytes;
  const first = parseInt(startWal.slice(8, 16), 16) * perId + parseInt(startWal.slice(16, 24), 16);
  const last = Math.floor((parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16) - 1) / segmentBytes);
  if (!(last >= first) || last - first > 1_000_000) return undefined;
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");
  const names: string[] = [];
  for (let seg = first; seg <= last; seg++) names.push(`${startWal.slice(0, 8)}${hex(Math.floor(seg / perId))}${hex(seg % perId)}`);
  return names;
}

/** Files by decreasing size (a vanished one sorts last: packFile skips it). */
function largestFirst(dir: string, files: readonly string[]): string[] {
  const size = (rel: string) => {
    try {
      return statSync(path.join(dir, rel)).size;
    } catch {
      return 0;
    }
  };
  return files.map((rel) => [rel, size(rel)] as const).sort((a, b) => b[1] - a[1]).map(([rel]) => rel);
}


/**
 * Base backups with Postgres's low-level API (pg_backup_start / pg_backup_stop)
 * and a file copy, since the embedded binaries have no pg_basebackup; restores
 * from them; retention. WAL archiving itself is Postgres's (basic_archive).
 */
export class BackupService {
  readonly #o: BackupServiceOptions;
  readonly #busy = new Set<string>();
  /** A restore's replaced data dir being removed, per database. */
  readonly #trash = new Map<string, Promise<void>>();

  constructor(options: BackupServiceOptions) {
    this.#o = Object.freeze({ ...options });
  }

  #now(): Date {
    return this.#o.now?.() ?? new Date();
  }

  /** A database backups and restores may work on: ready (running or restarting is checked by the lease) or suspended. */
  async #readyDatabase(ref: string) {
    const row = await this.#o.databases.getRow(ref);
    if (row.status !== "ready" && row.status !== "suspended") {
      throw new CcpError("not_ready", `Database ${row.id} is not ready (${row.status}).`, { hint: "Retry when `ccp db info` shows it ready." });
    }
    return row;
  }

  #claim(id: string, what: string): void {
    if (this.#busy.has(id)) throw new CcpError("conflict", `Database ${id} already has a backup or restore in progress.`, { hint: `Retry the ${what} when it is done.` });
    this.#busy.add(id);
  }

  async list(ref: string): Promise<BackupView[]> {
    const row = await this.#o.databases.getRow(ref);
    return (await this.#o.catalog.backups.readyOf(row.id)).map(view);
  }

  async #get(backupId: string, databaseId?: string): Promise<BackupRow> {
    if (!BACKUP_ID.test(backupId)) {
      throw new CcpError("invalid_request", `"${backupId}" is not a backup id (bkp- and 8 hex characters).`, { hint: "List backups with `ccp db backup list`." });
    }
    const row = await this.#o.catalog.backups.findReady(backupId);
    if (!row || (databaseId && row.database_id !== databaseId)) {
      throw new CcpError("not_found", `No backup ${backupId}${databaseId ? ` of database ${databaseId}` : ""}.`, { hint: "List backups with `ccp db backup list`." });
    }
    return row;
  }

  /** Take a base backup now. Resolves when it is complete and durable. */
  async create(ref: string, kind: BackupKind = "manual"): Promise<BackupView> {
    const db = await this.#readyDatabase(ref);
    this.#claim(db.id, "backup");
    const id = `bkp-${randomBytes(4).toString("hex")}`;
    const dir = this.#o.store.backupDir(db.id, id);
    const started = this.#now();
    const opId = await this.#o.catalog.tx(async (t) => {
      await t.backups.insertRunning(id, db.id, kind, started);
      return t.operations.begin(db.id, `backup:${id}`);
    });
    let taken = { start_lsn: "", stop_lsn: "", start_wal: null as string | null };
    let lease: Lease | undefined;
    try {
      // Wakes a suspended database (manual backups, and scheduled ones with writes since the last) and keeps it up meanwhile.
      lease = await this.#o.instances.use(db.id);
      // The same session must run start and stop: closing it aborts the backup.
      const phases = new Phases();
      await withAdmin(lease.endpoint, "postgres", async (admin) => {
        const start = await admin.query<{ lsn: string; wal: string }>("SELECT lsn::text, pg_walfile_name(lsn) AS wal FROM pg_backup_start($1, true) AS lsn", [id]);
        phases.mark("checkpoint");
        const dataDir = this.#o.instances.storage.dataDir(db.id);
        const { files, dirs } = listDataFiles(dataDir);
        mkdirSync(path.join(dir, "files"), { recursive: true, mode: 0o700 });
        makeDirs(path.join(dir, "files"), dirs, undefined);
        const manifestFiles: ManifestFile[] = [];
        const stats = emptyStats();
        // Largest first, so no big file starts last and runs alone.
        await eachLimit(largestFirst(dataDir, files), PARALLEL_CODEC, async (rel) => {
          const dst = path.join(dir, "files", `${rel}${storedSuffix(PACK_CODEC)}`);
          const packed = await packFile(path.join(dataDir, rel), dst, stats);
          if (packed) manifestFiles.push({ ...packed, path: rel });
        });
        phases.mark(`copy of ${manifestFiles.length} files, ${(manifestFiles.reduce((n, f) => n + f.size, 0) / MiB).toFixed(0)} MiB (${workerTime(stats, "lz4", manifestFiles.length)})`);
        // One syncfs for the whole copy (an fsync per file costs seconds on ~1300 files), before the manifest makes it count.
        await syncFilesystem(dir);
        phases.mark("syncfs");
        // Not pg_backup_stop(true): it checks the archive once a second, a second per backup. It
        // switches segments either way; the archive is polled below instead.
        const stop = await admin.query<{ lsn: string; wal: string; labelfile: string; spcmapfile: string }>(
          "SELECT lsn::text, pg_walfile_name(lsn) AS wal, labelfile, spcmapfile FROM pg_backup_stop(false)",
        );
        const s = stop.rows[0] as { lsn: string; wal: string; labelfile: string; spcmapfile: string };
        await this.#archived(db.id, s.wal);
        phases.mark("backup stop (WAL archived)");
        const manifest: Manifest = {
          format: 1,
          id,
          database_id: db.id,
          pg_version: this.#o.instances.pgVersion,
          start_lsn: start.rows[0]?.lsn ?? "",
          stop_lsn: s.lsn,
          backup_label: s.labelfile,
          tablespace_map: s.spcmapfile ?? "",
          dirs,
          files: manifestFiles.sort((a, b) => a.path.localeCompare(b.path)),
        };
        const manifestFile = path.join(dir, "manifest.json");
        writeFileSync(manifestFile, JSON.stringify(manifest), { mode: 0o600 });
        taken = { start_lsn: manifest.start_lsn, stop_lsn: manifest.stop_lsn, start_wal: start.rows[0]?.wal ?? null };
        await fsyncPath(manifestFile);
        // pg_backup_stop(true) waited for the archiver: a suspend with nothing written after this need not switch again.
        this.#o.instances.noteQuiet(db.id, (await admin.query<Quiet>(Instances.QUIET_SQL)).rows[0]);
      }, BACKUP_SESSION_TIMEOUT_MS);
      this.#o.log.info(`backup ${id} of ${db.id}: ${phases.summary()}`);
      const finished = this.#now();
      await this.#o.catalog.tx(async (t) => {
        await t.backups.markReady(id, { finishedAt: finished, startLsn: taken.start_lsn, stopLsn: taken.stop_lsn, startWal: taken.start_wal, sizeBytes: this.#o.store.size(db.id, id) });
        await t.operations.finish(opId, "done");
      });
      this.#o.observer?.backupFinished(db.id, id, kind, undefined, (finished.getTime() - started.getTime()) / 1000);
    } catch (err) {
      this.#o.observer?.backupFinished(db.id, id, kind, err as Error, (this.#now().getTime() - started.getTime()) / 1000);
      this.#o.store.removeBackup(db.id, id);
      await this.#o.catalog.tx(async (t) => {
        await t.backups.markFailed(id, (err as Error).message);
        await t.operations.finish(opId, "failed", (err as Error).message);
      });
      if (err instanceof CodecWorkerFailed) throw workerFailed(err, `Backup of ${db.id}`);
      throw err instanceof CcpError ? err : new CcpError("internal", `Backup of ${db.id} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      lease?.release();
      this.#busy.delete(db.id);
    }
    return view(await this.#get(id));
  }

  async delete(ref: string, backupId: string): Promise<BackupView> {
    const db = await this.#o.databases.getRow(ref);
    const row = await this.#get(backupId, db.id);
    await this.#o.catalog.backups.delete(row.id);
    this.#o.store.removeBackup(db.id, row.id);
    return { ...view(row), status: "deleted" };
  }

  #manifest(databaseId: string, backupId: string): Manifest {
    const file = path.join(this.#o.store.backupDir(databaseId, backupId), "manifest.json");
    try {
      return JSON.parse(readFileSync(file, "utf8")) as Manifest;
    } catch (err) {
      throw new CcpError("conflict", `Backup ${backupId} is damaged: its manifest cannot be read (${(err as Error).message}).`);
    }
  }

  /**
   * Make a restored data dir replay its WAL from pg_wal instead of through
   * restore_command, which Postgres runs once per (1 MiB) segment, a shell and
   * a `cp` each: 20–30 ms apiece on a busy machine, the whole cost of replaying
   * a GiB of WAL. The archived WAL from the backup's start on is copied into
   * pg_wal (in-kernel copies, several at once) and the first start is a
   * standby-mode recovery without restore_command, which reads pg_wal only and
   * promotes at the target. Standby mode waits for WAL that never comes, so the
   * caller asks for this only when the target is known to be in the archive
   * (a time target after a flush of the source's WAL), or for the backup's
   * own end (no target: the backup waited for its last segment to be
   * archived), when only the backup's own segments are copied, whatever came
   * after it. Returns the settings of that first start, or undefined (nothing
   * changed: archive recovery as usual) when the WAL is on more than one
   * timeline, too big to copy, or (own end) a segment is missing.
   */
  async stageWal(walSourceId: string, backupId: string, dataDir: string, target: { time?: Date; lsn?: string }, ownerId: string): Promise<Record<string, string> | undefined> {
    const manifest = this.#manifest(walSourceId, backupId);
    const startWal = /\(file ([0-9A-F]{24})\)/.exec(manifest.backup_label)?.[1];
    if (!startWal) return undefined;
    const timeline = startWal.slice(0, 8);
    const walDir = this.#o.store.walDir(walSourceId);
    const archived = this.#o.store.listWal(walSourceId);
    if (target.time === undefined && target.lsn === undefined) {
      const own = backupSegments(startWal, manifest.stop_lsn, statSync(path.join(walDir, startWal), { throwIfNoEntry: false })?.size);
      const present = new Set(archived);
      if (!own || !own.every((n) => present.has(n))) return undefined;
      // Every timeline's history too: at promotion Postgres picks the timeline after the newest it
      // can see (pg_wal only, here), and one the database has used since would collide in its archive.
      const histories = archived.filter((n) => n.endsWith(".history"));
      return this.#copyWal([...own, ...histories], walSourceId, dataDir, ownerId, { ...this.#recoverySettings(target), recovery_target_timeline: String(parseInt(timeline, 16)) });
    }
    const later = archived.filter((n) => WAL_SEGMENT.test(n) && n.slice(8) >= startWal.slice(8));
    // A later timeline (the source was restored since) is for archive recovery to follow.
    if (later.some((n) => !n.startsWith(timeline)) || archived.some((n) => n.endsWith(".history") && n.slice(0, 8) > timeline)) return undefined;
    const sizes = later.map((n) => statSync(path.join(walDir, n), { throwIfNoEntry: false })?.size ?? 0);
    if (sizes.reduce((a, b) => a + b, 0) > STAGE_WAL_MAX_BYTES) return undefined;
    return this.#copyWal(later, walSourceId, dataDir, ownerId, this.#recoverySettings(target));
  }

  /** stageWal's copy: `names` from the archive into pg_wal, standby.signal for recovery.signal; resolves to `settings`. */
  async #copyWal(names: readonly string[], walSourceId: string, dataDir: string, ownerId: string, settings: Record<string, string>): Promise<Record<string, string>> {
    const walDir = this.#o.store.walDir(walSourceId);
    const runAs = this.#o.instances.storage.ownerOf(ownerId);
    const started = performance.now();
    let bytes = 0;
    const owner = runAs && { uid: runAs.uid, gid: runAs.gid };
    // In the codec workers, beside the unpacking.
    await eachLimit(names, PARALLEL_CODEC, async (n) => {
      const dst = path.join(dataDir, "pg_wal", n);
      await codecPool.run({ op: "copy", src: path.join(walDir, n), dst, owner });
      bytes += statSync(dst).size;
    });
    this.#o.log.info(`WAL of ${walSourceId} staged into ${ownerId}'s pg_wal: ${names.length} files, ${(bytes / MiB).toFixed(0)} MiB in ${((performance.now() - started) / 1000).toFixed(2)} s`);
    rmSync(path.join(dataDir, "recovery.signal"), { force: true });
    writeFileSync(path.join(dataDir, "standby.signal"), "", { mode: 0o600 });
    if (runAs) chownSync(path.join(dataDir, "standby.signal"), runAs.uid, runAs.gid);
    return settings;
  }

  /** Wait until WAL segment `wal` is in the database's archive: the backup is restorable from then on. */
  async #archived(databaseId: string, wal: string): Promise<void> {
    const file = path.join(this.#o.store.walDir(databaseId), wal);
    const deadline = Date.now() + ARCHIVE_WAIT_MS;
    while (!existsSync(file)) {
      if (Date.now() > deadline) {
        throw new CcpError("not_ready", `WAL segment ${wal} of ${databaseId} was not archived within ${ARCHIVE_WAIT_MS / 60_000} minutes, so the backup would not be restorable.`, {
          hint: `Look for archiver errors with \`ccp db logs ${databaseId} --level warning\`, then retry the backup.`,
        });
      }
      await sleep(ARCHIVE_POLL_MS);
    }
  }

  /**
   * Unpack a backup into `target` (a new data dir), checking every file against
   * the manifest first-to-last; on any mismatch, nothing is left and a
   * CcpError says which file.
   */
  async #unpack(databaseId: string, backupId: string, target: string, ownerId: string, stats: CodecStats = emptyStats()): Promise<Manifest> {
    const manifest = this.#manifest(databaseId, backupId);
    const src = path.join(this.#o.store.backupDir(databaseId, backupId), "files");
    const runAs = this.#o.instances.storage.ownerOf(ownerId);
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true, mode: 0o700 });
    if (runAs) chownSync(target, runAs.uid, runAs.gid);
    try {
      makeDirs(target, manifest.dirs, runAs);
      // Largest first, so no big file starts last and runs alone.
      const bySize = [...manifest.files].sort((a, b) => b.size - a.size);
      await eachLimit(bySize, PARALLEL_CODEC, (f) => unpackFile(storedPath(src, f), path.join(target, f.path), f, runAs, stats));
      const extra: [string, string][] = [["backup_label", manifest.backup_label], ["recovery.signal", ""]];
      if (manifest.tablespace_map) extra.push(["tablespace_map", manifest.tablespace_map]);
      for (const [name, content] of extra) {
        writeFileSync(path.join(target, name), content, { mode: 0o600 });
        if (runAs) chownSync(path.join(target, name), runAs.uid, runAs.gid);
      }
    } catch (err) {
      rmSync(target, { recursive: true, force: true });
      if ((err as NodeJS.ErrnoException).code === "ENOSPC") {
        // A restore in place stages the backup beside the live data, on the database's own storage (its image, when it has one).
        throw new CcpError("storage_quota_exceeded", `Backup ${backupId} does not fit in the storage of ${ownerId} (it ran out while unpacking the backup); nothing was changed.`, {
          hint: `Raise its storage limit (\`ccp db limits ${ownerId} --storage <size>\`) or free space, then retry.`,
        });
      }
      if (err instanceof ChecksumMismatch || (err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "Z_DATA_ERROR") {
        throw new CcpError("conflict", `Backup ${backupId} does not match its manifest (${(err as Error).message}); refusing to use it.`, {
          hint: "Pick another backup (`ccp db backup list`).",
        });
      }
      if (err instanceof CodecWorkerFailed) throw workerFailed(err, `Unpacking backup ${backupId}`);
      throw err;
    }
    return manifest;
  }

  /** The first start of a restored data dir: its settings, and the archived WAL it replays (the driver sets restore_command). */
  #recoveryStart(walSourceId: string, target: { time?: Date; lsn?: string }): { settings: Record<string, string>; restoreWalFrom: string } {
    return { settings: this.#recoverySettings(target), restoreWalFrom: this.#o.store.walDir(walSourceId) };
  }

  #recoverySettings(target: { time?: Date; lsn?: string }): Record<string, string> {
    return {
      // The unpack wrote without fsync; Postgres makes the data dir durable before replaying (one syncfs, not an fsync per file).
      recovery_init_sync_method: "syncfs",
      recovery_target_action: "promote",
      // No read-only connections during replay: postmaster.pid says "ready" (what start() waits
      // for) only once recovery has reached its target and promoted, not at the consistent point.
      hot_standby: "off",
      // Postgres's own timestamp syntax: recovery_target_time refuses the ISO "T…Z" form.
      ...(target.time
        ? { recovery_target_time: target.time.toISOString().replace("T", " ").replace("Z", "+00"), recovery_target_inclusive: "true" }
        : target.lsn
          ? { recovery_target_lsn: target.lsn, recovery_target_inclusive: "true" }
          : { recovery_target: "immediate" }),
    };
  }

  /**
   * `backup verify`: unpack into a scratch directory (checking every file),
   * start Postgres on it, check it answers, remove it all.
   */
  async verify(ref: string, backupId: string): Promise<{ backup: BackupView; files: number; bytes: number }> {
    const db = await this.#o.databases.getRow(ref);
    const row = await this.#get(backupId, db.id);
    const scratchId = `db-${randomBytes(6).toString("hex")}`;
    const { storage } = this.#o.instances;
    storage.prepareEmpty(scratchId);
    try {
      const manifest = await this.#unpack(db.id, row.id, storage.dataDir(scratchId), scratchId);
      const fromPgWal = await this.stageWal(db.id, row.id, storage.dataDir(scratchId), {}, scratchId);
      const recovery: { settings: Record<string, string>; restoreWalFrom?: string } = fromPgWal ? { settings: fromPgWal } : this.#recoveryStart(db.id, {});
      // Archiving from a scratch server would mix its WAL into nobody's archive: keep it off.
      const endpoint = await this.#o.instances.start(scratchId, { ...recovery, settings: { ...recovery.settings, archive_mode: "off" }, timeoutMs: RECOVERY_TIMEOUT_MS });
      await withAdmin(endpoint, "postgres", (admin) => admin.query("SELECT count(*) FROM pg_database"));
      return { backup: view(row), files: manifest.files.length, bytes: manifest.files.reduce((n, f) => n + f.size, 0) };
    } finally {
      await this.#o.instances.destroy(scratchId).catch(() => rmSync(path.dirname(storage.dataDir(scratchId)), { recursive: true, force: true }));
      this.#o.store.removeAll(scratchId);
    }
  }

  /**
   * Replace a database's data with a backup's. The backup is unpacked and
   * checked beside the live data first (nothing stops if it is corrupt), then
   * the server is stopped, the directories swapped, and Postgres replays the
   * archived WAL to the backup's consistent point. On failure the old data
   * comes back. Id, host and token stay the same.
   */
  async restoreInPlace(ref: string, backupId: string): Promise<BackupView> {
    const db = await this.#readyDatabase(ref);
    const row = await this.#get(backupId, db.id);
    this.#claim(db.id, "restore");
    await this.#trash.get(db.id);
    const dataDir = this.#o.instances.storage.dataDir(db.id);
    const staged = `${dataDir}.restore`;
    const old = `${dataDir}.old`;
    const opId = await this.#o.catalog.operations.begin(db.id, `restore:${row.id}`);
    const phases = new Phases();
    let firstStart: { settings: Record<string, string>; restoreWalFrom?: string } = this.#recoveryStart(db.id, {});
    try {
      const stats = emptyStats();
      const manifest = await this.#unpack(db.id, row.id, staged, db.id, stats);
      phases.mark(`unpack of ${manifest.files.length} files, ${(manifest.files.reduce((n, f) => n + f.size, 0) / MiB).toFixed(0)} MiB (${workerTime(stats, "lz4", manifest.files.length)})`);
      // Postgres's first start syncs the data dir anyway (recovery_init_sync_method): done here, the
      // log line tells the disk's share from the start's, and the old server still answers meanwhile.
      // The backup's own WAL into pg_wal: replay reads it there instead of copying the whole archive.
      const fromPgWal = await this.stageWal(db.id, row.id, staged, {}, db.id);
      if (fromPgWal) firstStart = { settings: fromPgWal };
      phases.mark("WAL staged");
      await syncFilesystem(staged);
      phases.mark("syncfs");
    } catch (err) {
      rmSync(staged, { recursive: true, force: true });
      await this.#o.catalog.operations.finish(opId, "failed", (err as Error).message);
      this.#busy.delete(db.id);
      throw err;
    }
    try {
      await this.#o.catalog.databases.setStatus(db.id, "restoring");
      await this.#o.instances.stop(db.id, "restore");
      rmSync(old, { recursive: true, force: true });
      renameSync(dataDir, old);
      renameSync(staged, dataDir);
      phases.mark("stop and swap");
      try {
        await this.#o.instances.start(db.id, { ...firstStart, timeoutMs: RECOVERY_TIMEOUT_MS });
        phases.mark("recovery and start");
      } catch (err) {
        this.#o.log.error(`restore of ${db.id} from ${row.id} failed, bringing the previous data back: ${(err as Error).message}`);
        await this.#o.instances.stop(db.id);
        rmSync(dataDir, { recursive: true, force: true });
        renameSync(old, dataDir);
        await this.#o.instances.start(db.id);
        throw err;
      }
      await this.#o.catalog.databases.setStatus(db.id, "ready");
      await this.#o.catalog.operations.finish(opId, "done");
      // The replaced data goes in the background: the database answers already, and deleting a
      // GiB of files blocked the event loop for seconds. The next restore waits for it.
      this.#trash.set(db.id, rm(old, { recursive: true, force: true }).catch((err: Error) => this.#o.log.warn(`removing ${old}: ${err.message}`)));
      this.#o.observer?.restored(db.id, row.id);
      this.#o.log.info(`restore of ${db.id} from ${row.id}: ${phases.summary()}`);
      return view(row);
    } catch (err) {
      await this.#o.catalog.databases.setStatus(db.id, (await this.#o.instances.state(db.id)) === "running" ? "ready" : "failed", (err as Error).message);
      await this.#o.catalog.operations.finish(opId, "failed", (err as Error).message);
      throw err instanceof CcpError ? err : new CcpError("internal", `Restore of ${db.id} from ${row.id} failed; the previous data is back. Cause: ${(err as Error).message}`);
    } finally {
      rmSync(staged, { recursive: true, force: true });
      this.#busy.delete(db.id);
    }
  }

  /**
   * After a crash: an interrupted restore puts the previous data back; an
   * interrupted backup is marked failed and its files removed. Runs before
   * instances are started.
   */
  async reconcile(): Promise<void> {
    for (const op of await this.#o.catalog.operations.running()) {
      const [kind, backupId] = op.kind.split(":");
      if (kind === "restore") {
        const dataDir = this.#o.instances.storage.dataDir(op.database_id);
        if (existsSync(`${dataDir}.old`)) {
          rmSync(dataDir, { recursive: true, force: true });
          renameSync(`${dataDir}.old`, dataDir);
        }
        rmSync(`${dataDir}.restore`, { recursive: true, force: true });
        await this.#o.catalog.databases.setStatus(op.database_id, "ready");
        await this.#o.catalog.operations.finish(op.id, "failed", "interrupted by a ccpd restart; the previous data was kept");
        this.#o.log.warn(`reconcile: restore of ${op.database_id} was interrupted; kept its previous data`);
      } else if (kind === "backup" && backupId) {
        this.#o.store.removeBackup(op.database_id, backupId);
        await this.#o.catalog.backups.markFailed(backupId, "interrupted by a ccpd restart");
        await this.#o.catalog.operations.finish(op.id, "failed", "interrupted by a ccpd restart");
      }
    }
  }

  /**
   * Retention: backups finished before `now - days` are deleted, except the
   * newest of them (it is what makes the window's first instant restorable);
   * WAL older than the oldest kept backup's start is deleted too.
   */
  async prune(retentionDays: number): Promise<{ backups: string[]; wal: number }> {
    const cutoff = new Date(this.#now().getTime() - retentionDays * 24 * 3600 * 1000);
    const removed: string[] = [];
    let walRemoved = 0;
    const rows = await this.#o.catalog.backups.allReady();
    const byDb = new Map<string, BackupRow[]>();
    for (const r of rows) byDb.set(r.database_id, [...(byDb.get(r.database_id) ?? []), r]);
    for (const [dbId, backups] of byDb) {
      const older = backups.filter((b) => (b.finished_at as Date) < cutoff);
      for (const b of older.slice(1)) {
        await this.#o.catalog.backups.delete(b.id);
        this.#o.store.removeBackup(dbId, b.id);
        removed.push(b.id);
      }
      const kept = backups.filter((b) => !removed.includes(b.id));
      const oldest = kept[kept.length - 1];
      if (oldest?.start_wal) {
        const floor = oldest.start_wal.slice(8);
        const stale = this.#o.store.listWal(dbId).filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n) && n.slice(8, 24) < floor);
        this.#o.store.removeWal(dbId, stale);
        walRemoved += stale.length;
      }
    }
    return { backups: removed, wal: walRemoved };
  }

  /** Remove everything stored for a destroyed database. */
  async forgetDatabase(id: string): Promise<void> {
    await this.#o.catalog.backups.deleteOf(id);
    this.#o.store.removeAll(id);
  }

  /**
   * Remove a database's backups and archived WAL but keep its archive directory
   * (its server archives into it): a branch reset to its parent, whose old
   * history belongs to another timeline.
   */
  async forgetHistory(id: string): Promise<void> {
    for (const backupId of await this.#o.catalog.backups.deleteOf(id)) this.#o.store.removeBackup(id, backupId);
    this.#o.store.removeWal(id, this.#o.store.listWal(id));
  }

  /** `ccp db backup download`: the backup as one tar stream that plain Postgres starts from (download.ts). */
  async download(ref: string, backupId: string): Promise<{ backup: BackupView; stream: Readable }> {
    const db = await this.#o.databases.getRow(ref);
    const row = await this.#get(backupId, db.id);
    const manifest = this.#manifest(db.id, row.id);
    const files = path.join(this.#o.store.backupDir(db.id, row.id), "files");
    return { backup: view(row), stream: backupArchive(manifest, files, this.#o.store.walDir(db.id), this.#o.store.listWal(db.id)) };
  }

  /**
   * `ccp db restore <db> -t <time> -n <new>`: a new database holding the
   * source's state at `time` (pitr.ts). The source is untouched.
   */
  restoreToPointInTime(sourceRef: string, time: unknown, newName: unknown): Promise<CreatedDatabase> {
    const { databases, instances, retentionDays, now } = this.#o;
    return restoreToPointInTime({ databases, backups: this, instances, retentionDays, now }, sourceRef, time, newName);
  }

  // exposed for PITR (pitr.ts)
  /** Unpack into `target`, owned by instance `ownerId`'s identity. */
  async unpack(databaseId: string, backupId: string, target: string, ownerId: string): Promise<Manifest> {
    const phases = new Phases();
    const stats = emptyStats();
    const manifest = await this.#unpack(databaseId, backupId, target, ownerId, stats);
    phases.mark(`unpack of ${manifest.files.length} files, ${(manifest.files.reduce((n, f) => n + f.size, 0) / MiB).toFixed(0)} MiB (${workerTime(stats, "lz4", manifest.files.length)})`);
    this.#o.log.info(`restore of ${databaseId} from ${backupId} into ${ownerId}: ${phases.summary()}; recovery follows at its first start`);
    return manifest;
  }
  recoveryStart(walSourceId: string, target: { time?: Date; lsn?: string }): { settings: Record<string, string>; restoreWalFrom: string } {
    return this.#recoveryStart(walSourceId, target);
  }
  /** Where a database's WAL is archived (a live branch takes a segment recycled under its copy from there). */
  archiveDir(databaseId: string): string {
    return this.#o.store.walDir(databaseId);
  }
  async backupBefore(databaseId: string, time: Date): Promise<BackupView | undefined> {
    const row = await this.#o.catalog.backups.readyBefore(databaseId, time);
    return row && view(row);
  }
  /** The newest ready backup whose copy ends at or before `lsn` (a branch at an LSN starts from it). */
  async backupBeforeLsn(databaseId: string, lsn: string): Promise<BackupView | undefined> {
    const row = await this.#o.catalog.backups.readyBeforeLsn(databaseId, lsn);
    return row && view(row);
  }
  /** The start of the WAL a database's oldest ready backup needs: the earliest LSN a branch can be taken at. */
  async oldestBackupStopLsn(databaseId: string): Promise<string | undefined> {
    return this.#o.catalog.backups.oldestStopLsn(databaseId);
  }
  async oldestBackup(databaseId: string): Promise<BackupView | undefined> {
    const row = await this.#o.catalog.backups.oldestReady(databaseId);
    return row && view(row);
  }
}
