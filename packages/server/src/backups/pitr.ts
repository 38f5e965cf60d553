import { setTimeout as sleep } from "node:timers/promises";
import { withAdmin } from "../databases/admin-connection.js";
import type { DatabaseRow } from "../catalog/catalog.js";
import type { CreatedDatabase, DatabaseService, RestoreSource } from "../databases/service.js";
import { CcpError } from "../errors.js";
import type { InstanceEndpoint } from "../runtime/driver.js";
import type { Instances } from "../runtime/instances.js";
import type { BackupService } from "./service.js";

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const RECOVERY_TIMEOUT_MS = 60 * 60 * 1000;

export function parseRfc3339(input: unknown): Date {
  const text = typeof input === "string" ? input.trim() : "";
  const t = RFC3339.test(text) ? new Date(text.replace(" ", "T")) : undefined;
  if (!t || Number.isNaN(t.getTime())) {
    throw new CcpError("invalid_request", `Invalid timestamp "${String(input)}": use RFC 3339, e.g. 2026-04-12T14:22:00Z.`, {
      hint: "The time zone is required (Z or ±hh:mm).",
    });
  }
  return t;
}

/**
 * Make sure WAL up to now is in the archive: a commit stamped now (so a target
 * after the last real commit is still "reached" by recovery), then a segment
 * switch, then wait for the archiver.
 */
async function flushWalToArchive(endpoint: InstanceEndpoint, id: string): Promise<void> {
  await withAdmin(
    endpoint,
    "postgres",
    async (admin) => {
      await admin.query("SELECT pg_current_xact_id()");
      const { rows } = await admin.query<{ wal: string }>("SELECT pg_walfile_name(pg_switch_wal()) AS wal");
      const wanted = rows[0]?.wal ?? "";
      for (let i = 0; i < 300; i++) {
        const r = await admin.query<{ last: string | null }>("SELECT last_archived_wal AS last FROM pg_stat_archiver");
        const last = r.rows[0]?.last ?? "";
        if (last.slice(8) >= wanted.slice(8)) return;
        await sleep(100);
      }
      throw new CcpError("not_ready", `WAL of ${id} is not being archived (waiting for ${wanted}).`, { hint: `Look for archiver errors with \`ccp db logs ${id} --level warning\`.` });
    },
    60_000,
  );
}

type PitrDeps = { databases: DatabaseService; backups: BackupService; instances: Instances; retentionDays: number; now?: () => Date };

/**
 * What a create needs to hold the source's state at `time`: the latest base
 * backup finished before it, and archived WAL replayed to it. Checks the
 * instant first (not in the future, inside the restorable window). Shared by
 * point-in-time restore and branches at an instant (branches/service.ts).
 */
export async function pointInTimeSource(o: PitrDeps, source: DatabaseRow, time: Date): Promise<RestoreSource> {
  const now = o.now?.() ?? new Date();
  if (time.getTime() > now.getTime()) {
    throw new CcpError("invalid_request", `${time.toISOString()} is in the future.`, { hint: "Pick an instant between the oldest backup and now." });
  }
  const windowStart = new Date(now.getTime() - o.retentionDays * 24 * 3600 * 1000);
  const oldest = await o.backups.oldestBackup(source.id);
  const earliest = oldest ? new Date(Math.max(new Date(oldest.finished_at ?? oldest.created_at).getTime(), windowStart.getTime())) : undefined;
  if (!earliest || time < earliest) {
    throw new CcpError(
      "invalid_request",
      earliest
        ? `${time.toISOString()} is outside the restorable window of ${source.id}: the earliest restorable instant is ${earliest.toISOString()}.`
        : `${source.id} has no backup yet, so there is nothing to restore from.`,
      { hint: earliest ? `Retention is ${o.retentionDays} days; list backups with \`ccp db backup list --db-id ${source.id}\`.` : "Take one with `ccp db backup create`." },
    );
  }
  const backup = await o.backups.backupBefore(source.id, time);
  if (!backup) throw new CcpError("invalid_request", `No backup of ${source.id} finished before ${time.toISOString()}.`);
  // A flushed archive holds a commit stamped after `time`: recovery is sure to reach it, so it may replay from pg_wal.
  const flushed = await archiveWalNow(o.instances, source);
  return backupSource(o, source, backup.id, { time }, flushed);
}

/** Unpack `backupId` of `source` into the new instance, then replay the source's archived WAL to `target`. */
export function backupSource(
  o: Pick<PitrDeps, "backups" | "instances">,
  source: DatabaseRow,
  backupId: string,
  target: { time?: Date; lsn?: string },
  targetArchived = false,
): RestoreSource {
  const startOnce: { settings: Record<string, string>; timeoutMs: number; restoreWalFrom?: string } = { ...o.backups.recoveryStart(source.id, target), timeoutMs: RECOVERY_TIMEOUT_MS };
  return {
    owner: source.owner_role,
    from: source.id,
    populate: async (id) => {
      o.instances.storage.prepareEmpty(id);
      const dataDir = o.instances.storage.dataDir(id);
      await o.backups.unpack(source.id, backupId, dataDir, id);
      // WAL replay from pg_wal rather than a process per segment (BackupService.stageWal), where that is safe: no archive to read then.
      const staged = targetArchived ? await o.backups.stageWal(source.id, backupId, dataDir, target, id) : undefined;
      if (staged) {
        startOnce.settings = staged;
        delete startOnce.restoreWalFrom;
      }
    },
    startOnce,
  };
}

/**
 * Archive the source's WAL up to now, for a recovery target near now. A
 * suspended source archived its WAL (stamped with a commit) when it was
 * suspended: nothing to flush, no wake. True when it flushed (a commit
 * stamped now is in the archive).
 */
export async function archiveWalNow(instances: Instances, source: DatabaseRow): Promise<boolean> {
  if (source.status !== "ready" || (await instances.state(source.id)) !== "running") return false;
  const lease = await instances.use(source.id); // not suspended under the flush
  try {
    await flushWalToArchive(lease.endpoint, source.id);
  } finally {
    lease.release();
  }
  return true;
}

/**
 * `ccp db restore <db> -t <time> -n <new>`: a new database holding the source's
 * state at `time` (latest base backup finished before it, archived WAL replayed
 * to it). The source is untouched.
 */
export async function restoreToPointInTime(o: PitrDeps, sourceRef: string, timeInput: unknown, newName: unknown): Promise<CreatedDatabase> {
  const time = parseRfc3339(timeInput);
  const source = await o.databases.getRow(sourceRef);
  return o.databases.create(newName, {}, await pointInTimeSource(o, source, time));
}
