import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { jsonOption, suspendAfter } from "../../options.js";
import { Output } from "../../output.js";

export function register(db: Command): Command {
  return db
    .command("update")
    .description("change a database's settings")
    .argument("<id|name>", "database id (db-…) or name")
    .requiredOption("--suspend-after <duration>", "idle time before it is suspended: 30s, 5m, 2h, never, or default (the server's)", (v: string) => (v === "default" ? v : suspendAfter(v)))
    .addOption(jsonOption())
    .action(async (ref: string, o: { suspendAfter: string; json?: boolean }) =>
      printUpdated(Output.for(o), await updateDatabase(new ApiClient(), ref, { suspendAfter: o.suspendAfter === "default" ? null : o.suspendAfter })),
    );
}

/** `ccp db update <id|name> --suspend-after <duration|never|default>`: change a database's settings. */
export async function updateDatabase(api: ApiClient, ref: string, settings: { suspendAfter: string | null }): Promise<DatabaseView> {
  return (await api.request<{ database: DatabaseView }>("PATCH", `/v1/databases/${encodeURIComponent(ref)}`, { suspend_after: settings.suspendAfter })).database;
}

export function printUpdated(out: Output, d: DatabaseView): void {
  out.result({ database: d }, () => {
    out.success(`Updated ${out.style("bold", d.name)} (${d.id})`);
    out.fields([["Suspend after", d.suspend_after]]);
  });
}
