import type { DatabaseView } from "@ccp/server/client-side";
import type { ApiClient } from "../../api.js";
import type { Output } from "../../output.js";

/** `ccp db suspend <id|name>`: stop it cleanly now (its last WAL archived); any request wakes it. */
export async function suspendDatabase(api: ApiClient, ref: string): Promise<DatabaseView> {
  return (await api.request<{ database: DatabaseView }>("POST", `/v1/databases/${encodeURIComponent(ref)}/suspend`)).database;
}

export function printSuspended(out: Output, d: DatabaseView): void {
  if (out.json) return out.data({ database: d });
  out.success(`Suspended ${out.style("bold", d.name)} (${d.id})`);
  out.note("Any query, wire connection or `ccp db wake` starts it again.");
}
