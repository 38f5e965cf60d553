import type { MigrationFile } from "./files.js";
import type { AppliedRow } from "./tracking.js";

export type MigrationState =
  /** Applied, and the file is unchanged. */
  | "applied"
  | "pending"
  /** Applied, but the file was edited since (checksum differs). */
  | "changed"
  /** A no-transaction migration was claimed but has not finished: running now, or its run was interrupted. */
  | "unfinished";

export interface MigrationStatus {
  readonly name: string;
  readonly state: MigrationState;
  readonly file: MigrationFile;
  readonly applied: AppliedRow | undefined;
}

export interface MigrationPlan {
  /** Every migration file, in apply order, with its state. */
  readonly files: readonly MigrationStatus[];
  readonly pending: readonly MigrationFile[];
  readonly changed: readonly MigrationStatus[];
  readonly unfinished: readonly MigrationStatus[];
  /** Rows of `_ccp_migrations` whose file is no longer in the directory. */
  readonly missingFiles: readonly AppliedRow[];
  /** Pending files numbered below the newest applied one (added out of order, e.g. from a merged branch). */
  readonly outOfOrder: readonly MigrationFile[];
}

/** Compare the files with the tracking table. Pure. */
export function planMigrations(files: readonly MigrationFile[], applied: readonly AppliedRow[]): MigrationPlan {
  const rows = new Map(applied.map((r) => [r.name, r]));
  const statuses: MigrationStatus[] = files.map((file) => {
    const row = rows.get(file.name);
    const state: MigrationState = !row ? "pending" : row.duration_ms === null ? "unfinished" : row.checksum !== file.checksum ? "changed" : "applied";
    return { name: file.name, state, file, applied: row };
  });
  const names = new Set(files.map((f) => f.name));
  const newestApplied = Math.max(-1, ...statuses.filter((s) => s.state !== "pending").map((s) => s.file.number));
  const pending = statuses.filter((s) => s.state === "pending").map((s) => s.file);
  return {
    files: statuses,
    pending,
    changed: statuses.filter((s) => s.state === "changed"),
    unfinished: statuses.filter((s) => s.state === "unfinished"),
    missingFiles: applied.filter((r) => !names.has(r.name)),
    outOfOrder: pending.filter((f) => f.number < newestApplied),
  };
}

/** The rows to revert for `rollback --steps n`, newest first; `applied` is in applied order (as SELECT_APPLIED_SQL sorts it). */
export function rollbackTargets(applied: readonly AppliedRow[], steps: number): AppliedRow[] {
  return [...applied].reverse().slice(0, steps);
}

/** `1 migration`, `3 migrations`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
