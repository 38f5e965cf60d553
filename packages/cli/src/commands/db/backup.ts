import type { ApiClient } from "../../api.js";
import { CliError, EXIT, usageError } from "../../errors.js";
import type { Output } from "../../output.js";
import { PROJECT_CONFIG, readProjectConfig } from "../../project-config.js";
import { confirm } from "../../prompt.js";
import { getDatabase } from "./info.js";

/** A backup as ccpd's API returns it (GET /v1/databases/:ref/backups). */
export interface BackupView {
  readonly id: string;
  readonly database_id: string;
  readonly kind: "manual" | "scheduled";
  readonly status: string;
  readonly created_at: string;
  readonly finished_at: string | null;
  readonly size_bytes: number | null;
}

export interface VerifyResult {
  readonly backup: BackupView;
  /** Data files checked against the manifest. */
  readonly files: number;
  /** Their size, uncompressed. */
  readonly bytes: number;
}

/**
 * The database a `ccp db backup …` command targets: `--db-id`, else the
 * project's (.cluster/config.json).
 */
export function backupTarget(dbId: string | undefined, cwd = process.cwd()): string {
  const ref = dbId ?? readProjectConfig(cwd)?.databaseId;
  if (!ref) {
    throw usageError(`No database to back up: no --db-id, and no ${PROJECT_CONFIG} here.`, "Run it in the project directory, or pass --db-id <id>.");
  }
  return ref;
}

const backupsPath = (ref: string) => `/v1/databases/${encodeURIComponent(ref)}/backups`;
const backupPath = (ref: string, backupId: string) => `${backupsPath(ref)}/${encodeURIComponent(backupId)}`;

/** `2026-04-12T14:22:05.123Z` → `2026-04-12 14:22 UTC` (seed 000's backup times). */
export function backupTime(iso: string): string {
  const d = new Date(iso).toISOString();
  return `${d.slice(0, 10)} ${d.slice(11, 16)} UTC`;
}

/** `ccp db backup create`: a manual base backup, now. Resolves once it is complete and durable. */
export async function createBackup(api: ApiClient, ref: string): Promise<BackupView> {
  return (await api.request<{ backup: BackupView }>("POST", backupsPath(ref))).backup;
}

/** `ccp db backup list` / `ls`: newest first. */
export async function listBackups(api: ApiClient, ref: string): Promise<BackupView[]> {
  return (await api.request<{ backups: BackupView[] }>("GET", backupsPath(ref))).backups;
}

/** `ccp db backup delete` / `rm <bkp>`. */
export async function deleteBackup(api: ApiClient, ref: string, backupId: string): Promise<BackupView> {
  return (await api.request<{ backup: BackupView }>("DELETE", backupPath(ref, backupId))).backup;
}

/** `ccp db backup verify <bkp>`: ccpd restores it into a scratch instance, checks it answers, removes it. */
export async function verifyBackup(api: ApiClient, ref: string, backupId: string): Promise<VerifyResult> {
  return api.request<VerifyResult>("POST", `${backupPath(ref, backupId)}/verify`);
}

/**
 * `ccp db backup restore <bkp>`: replace the database's data with the
 * backup's (id, host and token stay). Asks first unless `yes`.
 */
export async function restoreBackup(
  api: ApiClient,
  ref: string,
  backupId: string,
  options: { yes: boolean; ask?: (q: string) => Promise<boolean> },
): Promise<BackupView> {
  // The question names the database by id, whatever --db-id held; this also fails early on an unknown one.
  const db = await getDatabase(api, ref);
  if (!options.yes) {
    const ask = options.ask ?? confirm;
    if (!(await ask(`Restore database ${db.id} from ${backupId}? This will overwrite current data.`))) {
      throw new CliError("declined", `Not restored: database ${db.id} is unchanged.`, { exitCode: EXIT.declined });
    }
  }
  return (await api.request<{ backup: BackupView }>("POST", `${backupPath(db.id, backupId)}/restore`)).backup;
}

export function printBackupCreated(out: Output, b: BackupView): void {
  if (out.json) return out.data({ backup: b });
  out.success("Backup created");
  out.line();
  out.fields([
    ["ID", b.id],
    ["Created", backupTime(b.created_at)],
  ]);
}

/** `dbId`: the --db-id given, repeated in the hint of an empty list. */
export function printBackupList(out: Output, backups: readonly BackupView[], dbId?: string): void {
  if (out.json) return out.data({ backups });
  if (backups.length === 0) {
    const flag = dbId === undefined ? "" : ` --db-id ${dbId}`;
    out.note(`No backups yet. Take one now with \`ccp db backup create${flag}\`; ccpd also takes one daily unless started with --backup-at off.`);
    return;
  }
  const kindWidth = Math.max(...backups.map((b) => b.kind.length));
  for (const b of backups) out.line(`• ${b.id} ${b.kind.padEnd(kindWidth)} ${backupTime(b.created_at)}`);
}

export function printBackupRestored(out: Output, b: BackupView): void {
  if (out.json) return out.data({ backup: b });
  out.success(`Restored database ${b.database_id} from ${b.id}`);
}

export function printBackupDeleted(out: Output, b: BackupView): void {
  if (out.json) return out.data({ backup: b });
  out.success(`Deleted backup ${b.id}`);
}

export function printBackupVerified(out: Output, r: VerifyResult): void {
  if (out.json) return out.data(r);
  const mib = r.bytes / 2 ** 20;
  out.success(`Backup ${r.backup.id} verified: ${r.files} files, ${mib < 10 ? mib.toFixed(1) : Math.round(mib)} MiB, Postgres started and answered`);
}
