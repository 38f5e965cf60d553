import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { getDatabase, getDatabaseWithSecrets } from "../../databases.js";
import { branchTime } from "../../format/branch.js";
import { jsonOption, LIMIT_COLUMNS, limitRows } from "../../options.js";
import { Output } from "../../output.js";

export function register(db: Command): Command {
  return db
    .command("info")
    .description("show a database")
    .argument("<id|name>", "database id (db-…) or name")
    .option("--show-secrets", "also show the DATABASE_URL, password included")
    .addOption(jsonOption())
    .action(async (ref: string, o: { json?: boolean; showSecrets?: boolean }) => {
      if (!o.showSecrets) return printInfo(Output.for(o), await getDatabase(new ApiClient(), ref));
      const r = await getDatabaseWithSecrets(new ApiClient(), ref);
      printInfo(Output.for(o), r.database, r.databaseUrl);
    });
}

export function printInfo(out: Output, d: DatabaseView, databaseUrl?: string): void {
  out.result(databaseUrl === undefined ? { database: d } : { database: d, database_url: databaseUrl }, () => {
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
    if (d.read_only) rows.push(["Read-only", out.style("bold", d.read_only.message)]);
    if (databaseUrl !== undefined) rows.push(["DATABASE_URL", databaseUrl]);
    out.fields(rows);
    if (d.limits) {
      out.line();
      out.table(LIMIT_COLUMNS, limitRows(d.limits));
    }
  });
}
