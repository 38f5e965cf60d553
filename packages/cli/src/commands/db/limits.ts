import type { LimitName, LimitsChange, LimitView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { jsonOption, LIMIT_COLUMNS, limitOptions, limitRows, limitsFrom } from "../../options.js";
import { Output } from "../../output.js";

export function register(db: Command): Command {
  return limitOptions(
    db
      .command("limits")
      .description("show a database's limits next to their usage, or change them (--memory 1GiB …; default: back to the server's)")
      .argument("<id|name>", "database id (db-…) or name"),
    true,
  )
    .option("--restart", "restart the database so every change takes effect now (otherwise some wait for its next start)")
    .addOption(jsonOption())
    .action(async (ref: string, o: { json?: boolean; restart?: boolean } & Partial<Record<LimitName, string>>) => {
      const limits = limitsFrom(o);
      const out = Output.for(o);
      if (Object.keys(limits).length === 0) return printLimits(out, await getLimits(new ApiClient(), ref));
      printChange(out, await changeLimits(new ApiClient(), ref, limits, o.restart === true));
    });
}

/** `ccp db limits <ref>`: every limit next to its usage (a suspended database is not woken). */
export async function getLimits(api: ApiClient, ref: string): Promise<LimitView[]> {
  return (await api.request<{ limits: LimitView[] }>("GET", `/v1/databases/${encodeURIComponent(ref)}/limits`)).limits;
}

/** `ccp db limits <ref> --memory …`: change limits; the answer says which took effect now and which at the next start. */
export async function changeLimits(api: ApiClient, ref: string, limits: Record<string, string | null>, restart: boolean): Promise<LimitsChange> {
  return api.request<LimitsChange>("PATCH", `/v1/databases/${encodeURIComponent(ref)}/limits`, { limits, restart });
}

function printLimits(out: Output, limits: LimitView[]): void {
  out.result({ limits }, () => out.table(LIMIT_COLUMNS, limitRows(limits)));
}

function printChange(out: Output, c: LimitsChange): void {
  out.result(c, () => {
    const d = c.database;
    if (c.changed.length === 0) out.success(`No limit of ${out.style("bold", d.name)} changed (the values given are already in force)`);
    else out.success(`Limits of ${out.style("bold", d.name)} (${d.id}) changed: ${c.changed.join(", ")}${c.restarted ? " (restarted)" : ""}`);
    const rows: [string, string][] = [];
    if (c.live.length > 0) rows.push(["In force now", c.live.join(", ")]);
    if (c.next_start.length > 0) rows.push(["At next start", `${c.next_start.join(", ")} (apply now with --restart)`]);
    if (c.settings_next_start) rows.push(["Postgres settings", "shared_buffers, max_connections, max_wal_size… follow at the next start (--restart applies them now)"]);
    if (rows.length > 0) out.fields(rows);
    if (d.limits) {
      out.line();
      out.table(LIMIT_COLUMNS, limitRows(d.limits));
    }
  });
}
