import type { DatabaseView } from "@ccp/server/client-side";
import type { ApiClient } from "../../api.js";
import type { Output } from "../../output.js";

/** `ccp db wake <id|name>`: start a suspended database now (it suspends again after its timeout idle). */
export async function wakeDatabase(api: ApiClient, ref: string): Promise<DatabaseView> {
  return (await api.request<{ database: DatabaseView }>("POST", `/v1/databases/${encodeURIComponent(ref)}/wake`)).database;
}

export function printWoken(out: Output, d: DatabaseView): void {
  if (out.json) return out.data({ database: d });
  out.success(`${out.style("bold", d.name)} (${d.id}) is ${d.status}`);
  out.note(d.suspend_after === "never" ? "It never suspends by itself." : `It suspends again after ${d.suspend_after} idle.`);
}
