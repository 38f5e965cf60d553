import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";

export function register(db: Command): Command {
  return db
    .command("suspend")
    .description("suspend a database now (clean stop, last WAL archived); any query or connection wakes it")
    .argument("<id|name>", "database id (db-…) or name")
    .addOption(jsonOption())
    .action(async (ref: string, o: { json?: boolean }) => printSuspended(Output.for(o), await suspendDatabase(new ApiClient(), ref)));
}

/** `ccp db suspend <id|name>`: stop it cleanly now (its last WAL archived); any request wakes it. */
export async function suspendDatabase(api: ApiClient, ref: string): Promise<DatabaseView> {
  return (await api.request<{ database: DatabaseView }>("POST", `/v1/databases/${encodeURIComponent(ref)}/suspend`)).database;
}

export function printSuspended(out: Output, d: DatabaseView): void {
  out.result({ database: d }, () => {
    out.success(`Suspended ${out.style("bold", d.name)} (${d.id})`);
    out.note("Any query, wire connection or `ccp db wake` starts it again.");
  });
}
