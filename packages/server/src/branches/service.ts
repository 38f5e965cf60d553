import { existsSync, renameSync, rmSync } from "node:fs";
import { withAdmin } from "../databases/admin-connection.js";
import { archiveWalNow, backupSource, parseRfc3339, pointInTimeSource } from "../backups/pitr.js";
import type { BackupService } from "../backups/service.js";
import type { Catalog, DatabaseRow } from "../catalog/catalog.js";
import type { CreatedDatabase, DatabaseService, DatabaseView, RestoreSource } from "../databases/service.js";
import { CcpError } from "../errors.js";
import type { Logger } from "../logger.js";
import { validateDatabaseName } from "../names.js";
import { Phases } from "../phases.js";
import type { Instances } from "../runtime/instances.js";
import { copyAtRest, copyRunning, type CopyPoint } from "./copy.js";

export interface BranchServiceOptions {
  readonly catalog: Catalog;
  readonly instances: Instances;
  readonly databases: DatabaseService;
  readonly backups: BackupService;
  readonly log: Logger;
  /** Days of backups and WAL kept: a branch at an instant must fall inside. */
  readonly retentionDays: number;
  /** Injected clock (expiry tests). */
  readonly now?: () => Date;
  /** How often expired branches are looked for (default 30 s). */
  readonly sweepIntervalMs?: number;
}

/** What `branch create` takes (API body, CLI flags). */
export interface BranchInput {
  readonly name: unknown;
  /** "now" (default), an RFC 3339 instant, or an LSN such as 0/3000060. */
  readonly at?: unknown;
  /** RFC 3339 instant, or… */
  readonly expires_at?: unknown;
  /** …a duration from now: 90s, 30m, 2h, 7d. */
  readonly ttl?: unknown;
}

const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
const TTL = /^(\d{1,6})([smhd])$/;
const TTL_UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** A copy's first start replays the WAL written during the copy; a big, busy parent takes a while. */
const RECOVERY_TIMEOUT_MS = 60 * 60 * 1000;

/** `2h` → milliseconds; anything else is a clear 400. */
export function parseTtl(input: unknown): number {
  const m = typeof input === "string" ? TTL.exec(input.trim()) : null;
  const ms = m ? Number(m[1]) * (TTL_UNIT_MS[m[2] as string] as number) : 0;
  if (!m || ms <= 0) {
    throw new CcpError("invalid_request", `Invalid ttl "${String(input)}": use a whole number and a unit, e.g. 90s, 30m, 2h or 7d.`, { hint: "Or give an instant with expires_at (--expires-at)." });
  }
  return ms;
}

/** An LSN's byte position (`X/Y`: X is the high 32 bits). */
function lsnValue(text: string): bigint {
  const [hi, lo] = text.split("/") as [string, string];
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

/** Normalised LSN text (upper-case hex), as Postgres prints it. */
function parseLsn(text: string): string {
  const [hi, lo] = text.split("/") as [string, string];
  return `${parseInt(hi, 16).toString(16).toUpperCase()}/${parseInt(lo, 16).toString(16).toUpperCase()}`;
}

/**
 * Branches: complete databases (own id, host, token, password, backups) whose
 * data is copied from a parent at an instant, resettable to the parent's
 * current state, destroyed by ccpd when they expire. Creation goes through
 * DatabaseService.create with a `populate` step, so intent, clean-up on
 * failure and reconciliation after a crash are the create's own.
 */
export class BranchService {
  readonly #o: BranchServiceOptions;
  readonly #busy = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> | undefined;

  constructor(options: BranchServiceOptions) {
    this.#o = Object.freeze({ ...options });
  }

  #now(): Date {
    return this.#o.now?.() ?? new Date();
  }

  #expiry(input: BranchInput): Date | null {
    if (input.expires_at !== undefined && input.ttl !== undefined) {
      throw new CcpError("invalid_request", "Give expires_at or ttl, not both.", { hint: "e.g. --ttl 2h, or --expires-at 2026-12-01T18:00:00Z." });
    }
    if (input.ttl !== undefined) return new Date(this.#now().getTime() + parseTtl(input.ttl));
    if (input.expires_at === undefined) return null;
    const at = parseRfc3339(input.expires_at);
    if (at.getTime() <= this.#now().getTime()) {
      throw new CcpError("invalid_request", `expires_at ${at.toISOString()} is not in the future.`, { hint: "Pick a later instant, or use --ttl." });
    }
    return at;
  }

  /**
   * The parent must be running (copied live, in backup mode) or asleep or
   * stopped (files at rest, copied as they are: a branch never wakes it).
   */
  async #copyable(parent: DatabaseRow): Promise<"running" | "at-rest"> {
    const state = await this.#o.instances.state(parent.id);
    if (parent.status === "ready" && state === "running") return "running";
    if ((parent.status === "suspended" || parent.status === "ready") && state === "suspended") return "at-rest";
    if (parent.status === "stopped" && state === "stopped") return "at-rest";
    throw new CcpError("not_ready", `Database ${parent.id} is not ready (${parent.status}), so it cannot be branched now.`, {
      hint: "Retry when `ccp db info` shows it ready.",
    });
  }

  /** Copy the parent's current state into `target` (a data dir that does not exist yet). */
  /** `ownerId`: the instance the copy is for (its identity owns the files). */
  async #copyParent(parent: DatabaseRow, target: string, label: string, ownerId: string): Promise<{ point: CopyPoint; how: "running" | "at-rest" }> {
    const { instances } = this.#o;
    const { storage } = instances;
    if ((await this.#copyable(parent)) === "at-rest") {
      // Copied without waking it; should someone wake it meanwhile, the files moved under the copy: copy it live instead.
      let woke = false;
      const onWake = (e: { id: string }) => void (e.id === parent.id && (woke = true));
      instances.events.on("wake", onWake);
      try {
        await copyAtRest(storage.dataDir(parent.id), target, storage.ownerOf(ownerId));
      } finally {
        instances.events.off("wake", onWake);
      }
      const after = await instances.state(parent.id);
      if (!woke && (after === "suspended" || after === "stopped")) return { point: { lsn: "", at: this.#now() }, how: "at-rest" };
      this.#o.log.warn(`branch of ${parent.id}: it woke during the copy of its files at rest; copying it live instead`);
    }
    // The lease keeps it from being suspended under the copy.
    const lease = await instances.use(parent.id);
    try {
      return { point: await copyRunning(lease.endpoint, storage.dataDir(parent.id), target, storage.ownerOf(ownerId), label, this.#o.backups.archiveDir(parent.id)), how: "running" };
    } finally {
      lease.release();
    }
  }

  /**
   * Settings of a copy's first start: replay to the copy's consistent point, from its own pg_wal when the copy
   * holds every segment (no archive staged), else from the parent's archive too; none when copied at rest.
   */
  #firstStart(parent: DatabaseRow, copied: { point: CopyPoint; how: "running" | "at-rest" }): RestoreSource["startOnce"] {
    if (copied.how === "at-rest") return { settings: {}, timeoutMs: RECOVERY_TIMEOUT_MS };
    const recovery = this.#o.backups.recoveryStart(parent.id, {});
    // The copy's own timeline: no other one is in its pg_wal to look for.
    if (copied.point.walInPgWal) return { settings: { ...recovery.settings, recovery_target_timeline: "current" }, timeoutMs: RECOVERY_TIMEOUT_MS };
    return { ...recovery, timeoutMs: RECOVERY_TIMEOUT_MS };
  }

  async #recordOrigin(id: string, at: Date | null, lsn: string | null): Promise<void> {
    await this.#o.catalog.databases.setBranchOrigin(id, at, lsn);
  }

  /**
   * `ccp db branch create <parent> --name <new> [--at …] [--ttl …]`: a new
   * database holding the parent's data at `at` (default now). From now: a copy
   * of the live data dir in backup mode, the parent never stopped. At an
   * earlier instant or an LSN: point-in-time recovery from the parent's backups
   * and WAL archive.
   */
  async create(parentRef: string, input: BranchInput): Promise<CreatedDatabase> {
    const { databases, backups, instances } = this.#o;
    validateDatabaseName(input.name);
    const parent = await databases.getRow(parentRef);
    const expiresAt = this.#expiry(input);
    const at = input.at === undefined || input.at === null ? "now" : String(input.at).trim();
    let source: RestoreSource;
    if (at === "now") {
      await this.#copyable(parent); // a clear error before anything is recorded
      const startOnce: RestoreSource["startOnce"] = { settings: {}, timeoutMs: RECOVERY_TIMEOUT_MS };
      const phases = new Phases();
      source = {
        owner: parent.owner_role,
        from: parent.id,
        branch: { parentId: parent.id, expiresAt },
        populate: async (id) => {
          instances.storage.prepareEmpty(id);
          phases.mark("intent and storage");
          const copied = await this.#copyParent(parent, instances.storage.dataDir(id), `branch ${id}`, id);
          phases.mark(`copy (${copied.how}${copied.how === "running" ? (copied.point.walInPgWal ? ", WAL from pg_wal" : ", WAL from the archive") : ""})`);
          // How the first start recovers depends on how the copy was made (live or at rest).
          Object.assign(startOnce, this.#firstStart(parent, copied));
          await this.#recordOrigin(id, copied.point.at, copied.point.lsn);
        },
        startOnce,
      };
      const created = await databases.create(input.name, {}, source);
      phases.mark("recovery, start and registration");
      this.#o.log.info(`branch ${created.database.id} of ${parent.id} from now: ${phases.summary()}`);
      return { ...created, database: await databases.get(created.database.id) };
    } else if (LSN.test(at)) {
      const lsn = parseLsn(at);
      await this.#checkLsn(parent, lsn);
      const backup = await backups.backupBeforeLsn(parent.id, lsn);
      if (!backup) throw new CcpError("invalid_request", `No backup of ${parent.id} ends at or before ${lsn}.`, { hint: "List backups with `ccp db backup list`." });
      source = { ...backupSource(this.#o, parent, backup.id, { lsn }), branch: { parentId: parent.id, expiresAt, lsn } };
    } else {
      const time = parseRfc3339(at);
      source = { ...(await pointInTimeSource(this.#o, parent, time)), branch: { parentId: parent.id, expiresAt, branchedAt: time } };
    }
    const created = await databases.create(input.name, {}, source);
    return { ...created, database: await databases.get(created.database.id) };
  }

  /** An LSN must lie between the oldest backup's end and the parent's current position; its WAL is archived first. */
  async #checkLsn(parent: DatabaseRow, lsn: string): Promise<void> {
    const oldest = await this.#o.backups.oldestBackupStopLsn(parent.id);
    const cmp = (a: string, b: string) => Math.sign(Number(lsnValue(a) - lsnValue(b)));
    if (!oldest) {
      throw new CcpError("invalid_request", `${parent.id} has no backup yet, so there is nothing to branch at ${lsn} from.`, { hint: "Take one with `ccp db backup create`, or branch from now." });
    }
    if (cmp(lsn, oldest) < 0) {
      throw new CcpError("invalid_request", `${lsn} is before the restorable window of ${parent.id}: the earliest LSN is ${oldest}.`, {
        hint: "Pick a later LSN, or branch from now.",
      });
    }
    if ((await this.#o.instances.state(parent.id)) === "running") {
      const lease = await this.#o.instances.use(parent.id);
      let current: string;
      try {
        current = await withAdmin(lease.endpoint, "postgres", async (a) => (await a.query<{ l: string }>("SELECT pg_current_wal_lsn()::text AS l")).rows[0]?.l ?? "0/0");
      } finally {
        lease.release();
      }
      if (cmp(lsn, current) > 0) {
        throw new CcpError("invalid_request", `${lsn} is in the future: ${parent.id} has written WAL up to ${current}.`, { hint: "Pick an LSN at or before that, or branch from now." });
      }
      await archiveWalNow(this.#o.instances, parent);
    }
  }

  /** `ccp db branch list [<parent>]`: branches of one database, or every branch. */
  async list(parentRef?: string): Promise<DatabaseView[]> {
    if (parentRef !== undefined) {
      const parent = await this.#o.databases.getRow(parentRef);
      return Promise.all((await this.#o.catalog.databases.branchesOf(parent.id)).map((r) => this.#o.databases.view(r)));
    }
    return (await this.#o.databases.list()).filter((d) => d.parent_id !== undefined);
  }

  /**
   * `ccp db branch reset <branch>`: replace the branch's data with its
   * parent's current state. Id, host, token and wire password stay (they live
   * in the catalog). The copy is made beside the live data first; then the
   * branch is stopped, the directories swapped and the copy recovered; on
   * failure the previous data comes back. The branch's earlier backups and
   * archived WAL describe data that no longer exists and are removed.
   */
  async reset(ref: string): Promise<DatabaseView> {
    const { catalog, databases, instances, log } = this.#o;
    const row = await databases.getRow(ref);
    if (!row.parent_id) {
      throw new CcpError("invalid_request", `Database ${row.id} (${row.name}) is not a branch, or its parent was destroyed: there is nothing to reset it to.`, {
        hint: "See branches with `ccp db branch list`.",
      });
    }
    const parent = await databases.getRow(row.parent_id);
    if (row.status !== "ready" && row.status !== "suspended") {
      throw new CcpError("not_ready", `Branch ${row.id} is not ready (${row.status}).`, { hint: "Retry when `ccp db info` shows it ready." });
    }
    await this.#copyable(parent);
    if (this.#busy.has(row.id)) throw new CcpError("conflict", `Branch ${row.id} is already being reset.`, { hint: "Retry when it is done." });
    this.#busy.add(row.id);
    const dataDir = instances.storage.dataDir(row.id);
    const staged = `${dataDir}.reset`;
    const old = `${dataDir}.old`;
    const opId = await catalog.operations.begin(row.id, "branch-reset");
    try {
      let copied: { point: CopyPoint; how: "running" | "at-rest" };
      try {
        copied = await this.#copyParent(parent, staged, `reset ${row.id}`, row.id);
      } catch (err) {
        rmSync(staged, { recursive: true, force: true });
        if ((err as NodeJS.ErrnoException).code === "ENOSPC") {
          // The parent's copy is staged beside the branch's data, on the branch's own storage (its image, when it has one).
          throw new CcpError("storage_quota_exceeded", `The data of ${parent.id} does not fit beside ${row.id}'s in its storage (it ran out while copying); nothing was changed.`, {
            hint: `Raise ${row.id}'s storage limit (\`ccp db limits ${row.id} --storage <size>\`), then retry.`,
          });
        }
        throw err;
      }
      await catalog.databases.setStatus(row.id, "restoring");
      // Closes its gateway and wire sessions; a suspended branch just stays stopped.
      await instances.stop(row.id, "restore");
      rmSync(old, { recursive: true, force: true });
      renameSync(dataDir, old);
      renameSync(staged, dataDir);
      // The new data continues the parent's history: the branch's own archive would clash with it.
      await this.#o.backups.forgetHistory(row.id);
      try {
        await instances.start(row.id, this.#firstStart(parent, copied));
      } catch (err) {
        log.error(`reset of branch ${row.id} failed, bringing its previous data back: ${(err as Error).message}`);
        await instances.stop(row.id);
        rmSync(dataDir, { recursive: true, force: true });
        renameSync(old, dataDir);
        await instances.start(row.id);
        throw err;
      }
      rmSync(old, { recursive: true, force: true });
      await this.#recordOrigin(row.id, copied.point.at, copied.point.lsn);
      await catalog.databases.setStatus(row.id, "ready");
      await catalog.operations.finish(opId, "done");
      return databases.get(row.id);
    } catch (err) {
      await catalog.databases.setStatus(row.id, (await instances.state(row.id)) === "running" ? "ready" : "failed", (err as Error).message);
      await catalog.operations.finish(opId, "failed", (err as Error).message);
      throw err instanceof CcpError ? err : new CcpError("internal", `Reset of branch ${row.id} failed; its previous data is kept. Cause: ${(err as Error).message}`, { cause: err });
    } finally {
      rmSync(staged, { recursive: true, force: true });
      this.#busy.delete(row.id);
    }
  }


  /** Destroy every database whose expiry has passed; returns their ids. */
  async sweep(now = this.#now()): Promise<string[]> {
    const gone: string[] = [];
    for (const id of await this.#o.catalog.databases.expired(now)) {
      try {
        // Its own branches stay, standalone, as with any forced destroy.
        await this.#o.databases.destroy(id, { force: true });
        this.#o.log.info(`branch ${id} expired and was destroyed`);
        gone.push(id);
      } catch (err) {
        this.#o.log.error(`destroying expired ${id} failed (retried at the next sweep): ${(err as Error).message}`);
      }
    }
    return gone;
  }

  /** Look for expired branches periodically (ccpd's start). */
  start(): void {
    this.#timer = setInterval(() => {
      if (!this.#sweeping) this.#sweeping = this.sweep().finally(() => (this.#sweeping = undefined));
    }, this.#o.sweepIntervalMs ?? 30_000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sweeping?.catch(() => undefined);
  }

  /**
   * After a crash, before instances start: an interrupted reset gets the
   * branch's previous data back (or keeps the new one if the swap finished).
   */
  async reconcile(): Promise<void> {
    for (const op of await this.#o.catalog.operations.running()) {
      if (op.kind !== "branch-reset") continue;
      const dataDir = this.#o.instances.storage.dataDir(op.database_id);
      if (existsSync(`${dataDir}.old`)) {
        rmSync(dataDir, { recursive: true, force: true });
        renameSync(`${dataDir}.old`, dataDir);
      }
      rmSync(`${dataDir}.reset`, { recursive: true, force: true });
      await this.#o.catalog.databases.setStatus(op.database_id, "ready");
      await this.#o.catalog.operations.finish(op.id, "failed", "interrupted by a ccpd restart; the branch kept its previous data");
      this.#o.log.warn(`reconcile: reset of branch ${op.database_id} was interrupted; kept its previous data`);
    }
  }
}
