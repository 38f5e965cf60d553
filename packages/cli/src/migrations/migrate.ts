import path from "node:path";
import { createClient, type Fetch } from "@ccp/client";
import { CliError, EXIT } from "../errors.js";
import { DEFAULT_MIGRATIONS_DIR } from "../options.js";
import type { Output } from "../output.js";
import { resolveExecTarget, type ExecTarget } from "../target.js";
import type { MigrationDir, MigrationFile } from "./files.js";
import { planMigrations, plural, type MigrationPlan } from "./plan.js";
import { clientError, describeSqlFailure, displayPath, loadMigrationDir, reportDirWarnings } from "./report.js";
import { MigrationRunner, SqlFileError, TrackingConflictError, type ApplyOutcome, type SqlFileFailure } from "./runner.js";
import { TRACKING_TABLE } from "./tracking.js";

/** `ccp db migrate`: the work, loaded when the command runs (commands/db/migrate.ts registers it). */

export interface MigrateFlags {
  readonly dir?: string | undefined;
  readonly dbId?: string | undefined;
  readonly token?: string | undefined;
  readonly database?: string | undefined;
  readonly status?: boolean | undefined;
  readonly dryRun?: boolean | undefined;
}

function runnerFor(target: ExecTarget, fetch?: Fetch): MigrationRunner {
  return new MigrationRunner(createClient({ url: target.apiUrl, databaseId: target.databaseId, token: target.token, database: target.database, fetch }));
}

export interface MigrationStatusResult {
  readonly dir: MigrationDir;
  readonly plan: MigrationPlan;
}

/** `ccp db migrate --status`: files against `_ccp_migrations`; applies nothing. */
export async function migrationStatus(target: ExecTarget, dir: MigrationDir, options: { fetch?: Fetch } = {}): Promise<MigrationStatusResult> {
  let applied;
  try {
    applied = await runnerFor(target, options.fetch).applied();
  } catch (err) {
    throw clientError(err, target);
  }
  return { dir, plan: planMigrations(dir.migrations, applied) };
}

/** Refuse to run while an applied file was edited or a no-transaction migration is unfinished. */
export function checkPlan(plan: MigrationPlan, dir: MigrationDir): void {
  if (plan.changed.length > 0) {
    const names = plan.changed.map((s) => s.name);
    throw new CliError(
      "migration_changed",
      `${names.join(", ")} ${names.length === 1 ? "was" : "were"} edited after being applied (checksum differs from ${TRACKING_TABLE}); nothing was run.`,
      {
        hint: `Applied migrations never run again: restore ${names.length === 1 ? "it" : "them"} (e.g. \`git checkout -- ${displayPath(path.join(dir.dir, names[0] as string))}\`) and put the change in a new migration (\`ccp db migrate new NAME\`).`,
        exitCode: EXIT.conflict,
      },
    );
  }
  const u = plan.unfinished[0];
  if (u) throw unfinishedError(u.name);
}

function unfinishedError(name: string): CliError {
  return new CliError("migration_unfinished", `${name} runs outside a transaction and has not finished: another \`ccp db migrate\` is running it, or a run was interrupted; nothing was run.`, {
    hint: `If no other run is active, check whether it took effect (a failed CREATE INDEX CONCURRENTLY leaves an INVALID index: drop it), then \`ccp db exec "DELETE FROM ${TRACKING_TABLE} WHERE name = '${name}'"\` and run \`ccp db migrate\` again.`,
    exitCode: EXIT.conflict,
  });
}

export interface MigrateResult {
  readonly dir: MigrationDir;
  readonly plan: MigrationPlan;
  /** One per file attempted, in order; the failed one is not among them. */
  readonly outcomes: readonly ApplyOutcome[];
  /** The file Postgres rejected; the files after it were not run. */
  readonly failure: SqlFileFailure | undefined;
}

/**
 * Apply the pending files of `plan` in order, each in one transaction with its
 * tracking row, stopping at the first failure. Returns a result per file
 * rather than throwing half-way; `onOutcome` sees each as it happens.
 */
export async function applyPending(
  target: ExecTarget,
  dir: MigrationDir,
  plan: MigrationPlan,
  options: { fetch?: Fetch; onOutcome?: (o: ApplyOutcome) => void } = {},
): Promise<MigrateResult> {
  const runner = runnerFor(target, options.fetch);
  const outcomes: ApplyOutcome[] = [];
  for (const file of plan.pending) {
    let outcome: ApplyOutcome;
    try {
      outcome = await runner.apply(file);
    } catch (err) {
      if (err instanceof SqlFileError) return { dir, plan, outcomes, failure: err.failure };
      if (err instanceof TrackingConflictError) throw unfinishedError(err.migration);
      throw clientError(err, target, file.name);
    }
    outcomes.push(outcome);
    options.onOutcome?.(outcome);
  }
  return { dir, plan, outcomes, failure: undefined };
}

/** `ccp db migrate` as a function: plan, refuse on edited or unfinished files, apply. */
export async function migrate(target: ExecTarget, dir: MigrationDir, options: { fetch?: Fetch; onOutcome?: (o: ApplyOutcome) => void } = {}): Promise<MigrateResult> {
  const { plan } = await migrationStatus(target, dir, options);
  checkPlan(plan, dir);
  return applyPending(target, dir, plan, options);
}

const arrow = (out: Output) => out.style("cyan", "›");

function statusLine(out: Output, s: MigrationPlan["files"][number]): string {
  switch (s.state) {
    case "applied":
      return `${out.style("green", "✓")} ${s.name}`;
    case "pending":
      return `${out.style("dim", "○")} ${s.name}`;
    case "changed":
      return `${out.style("yellow", "!")} ${s.name} ${out.style("yellow", "(changed since applied)")}`;
    case "unfinished":
      return `${out.style("yellow", "…")} ${s.name} ${out.style("yellow", "(started outside a transaction, not finished)")}`;
  }
}

export function printStatus(out: Output, r: MigrationStatusResult): void {
  const { plan } = r;
  const json = {
    dir: displayPath(r.dir.dir),
    migrations: plan.files.map((s) => ({
      name: s.name,
      state: s.state,
      checksum: s.file.checksum,
      applied_at: s.applied?.applied_at ?? null,
      duration_ms: s.applied?.duration_ms ?? null,
    })),
    missing_files: plan.missingFiles,
    pending: plan.pending.length,
  };
  out.result(json, () => {
    out.line(`${arrow(out)} Migration status:`);
    out.line();
    for (const s of plan.files) out.line(statusLine(out, s));
    for (const m of plan.missingFiles) out.line(`${out.style("yellow", "?")} ${m.name} ${out.style("yellow", "(applied, file missing)")}`);
    if (plan.files.length === 0 && plan.missingFiles.length === 0) out.line(out.style("dim", `(no migrations in ${displayPath(r.dir.dir)})`));
    out.line();
    out.line(plural(plan.pending.length, "pending migration"));
  });
}

export function printDryRun(out: Output, r: MigrationStatusResult): void {
  const { plan } = r;
  out.result({ dry_run: true, pending: plan.pending.map((f) => f.name), applied: plan.files.length - plan.pending.length }, () => {
    if (plan.pending.length === 0) return out.success(allApplied(plan));
    out.line(`${arrow(out)} ${plural(plan.pending.length, "pending migration")} would run (dry run, nothing applied):`);
    out.line();
    for (const f of plan.pending) out.line(`${out.style("dim", "○")} ${f.name}${f.noTransaction ? out.style("dim", " (no transaction)") : ""}`);
  });
}

function allApplied(plan: MigrationPlan): string {
  const n = plan.files.length;
  return n === 1 ? "1 migration already applied" : `All ${n} migrations already applied`;
}

function outcomeLine(out: Output, o: ApplyOutcome): string {
  return o.status === "applied"
    ? `${out.style("green", "✓")} ${o.name} ${out.style("dim", `${o.durationMs}ms`)}`
    : `${out.style("green", "✓")} ${o.name} ${out.style("dim", "(applied by a concurrent run)")}`;
}

/** The `ccp db migrate` command: resolve, plan, then --status, --dry-run or apply, printing as it goes. */
export async function runMigrate(out: Output, flags: MigrateFlags): Promise<number> {
  const target = resolveExecTarget(flags);
  const dir = loadMigrationDir(path.resolve(flags.dir ?? DEFAULT_MIGRATIONS_DIR));
  const status = await migrationStatus(target, dir);
  const { plan } = status;
  reportDirWarnings(out, dir, plan);
  if (flags.status) {
    printStatus(out, status);
    return EXIT.ok;
  }
  if (flags.dryRun) {
    printDryRun(out, status);
    return EXIT.ok;
  }
  checkPlan(plan, dir);
  out.progress(() => {
    if (plan.files.length === 0) {
      out.line(`${arrow(out)} No migrations in ${displayPath(dir.dir)} yet.`);
      out.line(out.style("dim", "  Create one with `ccp db migrate new NAME`."));
    } else if (plan.pending.length === 0) {
      out.success(allApplied(plan));
    } else {
      out.line(`${arrow(out)} Running ${plural(plan.pending.length, "pending migration")}...`);
      out.line();
    }
  });
  const r = await applyPending(target, dir, plan, {
    onOutcome: (o) => out.progress(() => out.line(outcomeLine(out, o))),
  });
  const applied = r.outcomes.filter((o) => o.status === "applied").length;
  const concurrent = r.outcomes.length - applied;
  const json = {
    applied: r.outcomes.map((o) => (o.status === "applied" ? { name: o.name, status: o.status, duration_ms: o.durationMs } : { name: o.name, status: o.status })),
    already_applied: r.plan.files.length - r.plan.pending.length,
    failed: r.failure ? failureJson(r.failure) : null,
    not_run: r.plan.pending.slice(r.outcomes.length + (r.failure ? 1 : 0)).map((f) => f.name),
  };
  out.result(json, () => {
    if (r.failure) {
      out.line(`${out.style("red", "✗")} ${r.failure.file.name}`);
    } else if (r.plan.pending.length > 0) {
      out.line();
      if (applied === 0) out.success(`Nothing left to apply: ${plural(concurrent, "migration")} applied by a concurrent run`);
      else out.success(`${plural(applied, "migration")} applied${concurrent > 0 ? ` (${concurrent} by a concurrent run)` : ""}`);
    }
  });
  if (r.failure) throw failureError(r.failure, r.plan.pending, r.outcomes.length);
  return EXIT.ok;
}

function failureJson(f: SqlFileFailure): Record<string, unknown> {
  // statement_index counts our wrapper statements (lock, tracking row, …): not meaningful to a reader.
  const { statement_index: _index, ...fields } = f.error.body;
  return { ...fields, name: f.file.name, code: f.error.code, message: f.error.message, line: f.location?.line ?? null, column: f.location?.column ?? null };
}

function failureError(f: SqlFileFailure, pending: readonly MigrationFile[], applied: number): CliError {
  const notRun = pending.length - pending.findIndex((p) => p.name === f.file.name) - 1;
  const before = applied > 0 ? `; the ${plural(applied, "migration")} before it ${applied === 1 ? "stays" : "stay"} applied` : "";
  const after = notRun > 0 ? `, ${plural(notRun, "later migration")} not run` : "";
  return new CliError("migration_failed", describeSqlFailure(f), {
    hint: `${f.file.noTransaction ? "Its claim was removed" : "Nothing of it was committed"}${before}${after}. Fix it and run \`ccp db migrate\` again.`,
    exitCode: EXIT.sqlError,
    details: failureJson(f),
  });
}

