import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { branchSummary } from "../../format/branch.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";

export function register(db: Command): Command {
  return db
    .command("list")
    .alias("ls")
    .description("list databases")
    .addOption(jsonOption())
    .action(async (o: { json?: boolean }) => printList(Output.for(o), await listDatabases(new ApiClient())));
}

/** `ccp db list` / `ls`. */
export async function listDatabases(api: ApiClient): Promise<DatabaseView[]> {
  return (await api.request<{ databases: DatabaseView[] }>("GET", "/v1/databases")).databases;
}

export function printList(out: Output, databases: readonly DatabaseView[]): void {
  out.result({ databases }, () => {
    if (databases.length === 0) {
      out.note("No databases yet. Create one with `ccp db create --name my-app-db`.");
      return;
    }
    const nameWidth = Math.max(...databases.map((d) => d.name.length));
    const statusWidth = Math.max(...databases.map((d) => d.status.length));
    const names = new Map(databases.map((d) => [d.id, d.name]));
    for (const d of databases) {
      const status = d.status === "ready" ? out.style("green", d.status.padEnd(statusWidth)) : out.style("yellow", d.status.padEnd(statusWidth));
      out.line(`${out.style("dim", "•")} ${out.style("bold", d.name.padEnd(nameWidth))}  ${status}  ${d.id}`);
      const inside = d.databases ? ` · databases: ${d.databases.join(", ")}` : "";
      const active = d.last_active_at ? ` · last active ${d.last_active_at}` : "";
      out.line(`  ${out.style("dim", `${d.host} · owner ${d.user}${inside}${active}`)}`);
      const branch = branchSummary(d, names);
      if (branch) out.line(`  ${out.style("dim", branch)}`);
    }
  });
}
