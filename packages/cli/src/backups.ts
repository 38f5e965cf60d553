/** What the `ccp db backup …` commands share: the API's backup view and paths, and how backup times are shown. */

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

export const backupsPath = (ref: string): string => `/v1/databases/${encodeURIComponent(ref)}/backups`;
export const backupPath = (ref: string, backupId: string): string => `${backupsPath(ref)}/${encodeURIComponent(backupId)}`;

/** `2026-04-12T14:22:05.123Z` → `2026-04-12 14:22 UTC` (seed 000's backup times). */
export function backupTime(iso: string): string {
  const d = new Date(iso).toISOString();
  return `${d.slice(0, 10)} ${d.slice(11, 16)} UTC`;
}
