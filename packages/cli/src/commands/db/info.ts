import type { DatabaseView } from "@ccp/server/client-side";
import type { ApiClient } from "../../api.js";
import type { Output } from "../../output.js";
import { branchTime } from "./branch.js";

/** `ccp db info <id|name>`. */
export async function getDatabase(api: ApiClient, ref: string): Promise<DatabaseView> {
  return (await api.request<{ database: DatabaseView }>("GET", `/v1/databases/${encodeURIComponent(ref)}`)).database;
}

/** `ccp db info --show-secrets`: the database with its DATABASE_URL (password included). */
export async function getDatabaseWithSecrets(api: ApiClient, ref: string): Promise<{ database: DatabaseView; databaseUrl: string }> {
  const r = await api.request<{ database: DatabaseView; database_url: string }>("GET", `/v1/databases/${encodeURIComponent(ref)}?show_secrets=true`);
  return { database: r.database, databaseUrl: r.database_url };
}

export function printInfo(out: Output, d: DatabaseView, databaseUrl?: string): void {
  if (out.json) return out.data(databaseUrl === undefined ? { database: d } : { database: d, database_url: databaseUrl });
  out.line(`${out.style("dim", "Database")} ${out.style("bold", d.name)}`);
  out.line();
  const rows: [string, string][] = [
    ["ID", d.id],
    ["Status", d.status],
    ["Host", d.host],
    ["Database", d.database],
    ["User", d.user],
    ["Databases", d.databases ? d.databases.join(", ") : out.style("dim", d.status === "suspended" ? "unknown (suspended)" : "unknown (not running)")],
    ["Postgres", d.pg_version],
    ["Created", d.created_at],
    ["Last active", d.last_active_at ?? out.style("dim", "never")],
    ["Suspends after", d.suspend_after === "never" ? "never" : `${d.suspend_after} idle`],
  ];
  if (d.parent_id) rows.push(["Branch of", `${d.parent_id}${d.branched_at ? ` at ${branchTime(d.branched_at)}` : ""}${d.branch_lsn ? ` (LSN ${d.branch_lsn})` : ""}`]);
  if (d.expires_at) rows.push(["Expires", `${branchTime(d.expires_at)} (ccpd destroys it then)`]);
  if (d.restarts > 0) rows.push(["Restarts", String(d.restarts)]);
  if (d.last_error) rows.push(["Last error", d.last_error]);
  if (databaseUrl !== undefined) rows.push(["DATABASE_URL", databaseUrl]);
  out.fields(rows);
}
