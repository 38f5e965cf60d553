import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";

export function register(db: Command): Command {
  return db
    .command("wake")
    .description("start a suspended database now")
    .argument("<id|name>", "database id (db-…) or name")
    .addOption(jsonOption())
    .action(async (ref: string, o: { json?: boolean }) => printWoken(Output.for(o), await wakeDatabase(new ApiClient(), ref)));
}

/** `ccp db wake <id|name>`: start a suspended database now (it suspends again after its timeout idle). */
export async function wakeDatabase(api: ApiClient, ref: string): Promise<DatabaseView> {
  return (await api.request<{ database: DatabaseView }>("POST", `/v1/databases/${encodeURIComponent(ref)}/wake`)).database;
}

export function printWoken(out: Output, d: DatabaseView): void {
  out.result({ database: d }, () => {
    out.success(`${out.style("bold", d.name)} (${d.id}) is ${d.status}`);
    out.note(d.suspend_after === "never" ? "It never suspends by itself." : `It suspends again after ${d.suspend_after} idle.`);
  });
}
