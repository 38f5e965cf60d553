import type { DatabaseStatusView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";

export function register(db: Command): Command {
  return db
    .command("status")
    .description("show a database's state, Postgres version, size, connections, uptime and last backup")
    .argument("<id|name>", "database id (db-…) or name")
    .addOption(jsonOption())
    .action(async (ref: string, o: { json?: boolean }) => printDatabaseStatus(Output.for(o), await databaseStatus(new ApiClient(), ref)));
}

/** `ccp db status <id|name>` (seed 003). */
export async function databaseStatus(api: ApiClient, ref: string): Promise<DatabaseStatusView> {
  return (await api.request<{ status: DatabaseStatusView }>("GET", `/v1/databases/${encodeURIComponent(ref)}/status`)).status;
}

/** 1536 → "1.5 kB": powers of 1024 with the units people read (as pg_size_pretty does). */
export function formatBytes(n: number): string {
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** 93784 → "1d 2h 3m": the two or three largest units. */
export function formatDuration(seconds: number): string {
  const parts: string[] = [];
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3_600);
  const m = Math.floor((seconds % 3_600) / 60);
  const s = Math.floor(seconds % 60);
  if (d) parts.push(`${d}d`);
  if (h || d) parts.push(`${h}h`);
  if (!d) parts.push(`${m}m`);
  if (!d && !h) parts.push(`${s}s`);
  return parts.join(" ");
}

export function printDatabaseStatus(out: Output, s: DatabaseStatusView): void {
  out.result({ status: s }, () => printStatusText(out, s));
}

function printStatusText(out: Output, s: DatabaseStatusView): void {
  const unknown = out.style("dim", "unknown (not running)");
  out.line(`${out.style("dim", "Database")} ${out.style("bold", s.name)} ${out.style("dim", `(${s.id})`)}`);
  out.line();
  const state = s.state === "ready" ? out.style("green", s.state) : out.style("yellow", s.state);
  out.fields([
    ["State", state],
    ["Host", s.host],
    ["Owner", s.owner],
    ["Postgres", s.pg_version],
    ["Size", s.size_bytes === null ? unknown : `${formatBytes(s.size_bytes)}${s.size_limit_bytes === null ? " (no limit)" : ` of ${formatBytes(s.size_limit_bytes)}`}`],
    ["Connections", s.connections === null ? unknown : `${s.connections}${s.max_connections === null ? "" : ` / ${s.max_connections}`}`],
    ["TPS (1 min)", s.tps === null ? (s.state === "ready" ? out.style("dim", "measuring") : unknown) : s.tps.toFixed(2)],
    ["Cache hit", s.cache_hit_rate === null ? unknown : `${(s.cache_hit_rate * 100).toFixed(1)}%`],
    ["Uptime", s.uptime_seconds === null || s.started_at === null ? unknown : `${formatDuration(s.uptime_seconds)} (since ${s.started_at})`],
    ["Last backup", s.last_backup_at ?? "none"],
    ["Archive lag", s.wal_archive_lag_bytes === null ? unknown : `${formatBytes(s.wal_archive_lag_bytes)}${s.last_archived_age_seconds === null ? "" : ` (last WAL archived ${formatDuration(s.last_archived_age_seconds)} ago)`}`],
    ["Last active", s.last_active_at ?? "never"],
    ["Suspends after", s.suspend_after === "never" ? "never" : `${s.suspend_after} idle`],
    ["Databases", s.databases === null ? unknown : s.databases.join(", ")],
  ]);
}
