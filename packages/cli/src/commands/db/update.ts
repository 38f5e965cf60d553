import type { DatabaseView } from "@ccp/server/client-side";
import type { ApiClient } from "../../api.js";
import type { Output } from "../../output.js";

/** `ccp db update <id|name> --suspend-after <duration|never|default>`: change a database's settings. */
export async function updateDatabase(api: ApiClient, ref: string, settings: { suspendAfter: string | null }): Promise<DatabaseView> {
  return (await api.request<{ database: DatabaseView }>("PATCH", `/v1/databases/${encodeURIComponent(ref)}`, { suspend_after: settings.suspendAfter })).database;
}

export function printUpdated(out: Output, d: DatabaseView): void {
  if (out.json) return out.data({ database: d });
  out.success(`Updated ${out.style("bold", d.name)} (${d.id})`);
  out.fields([["Suspend after", d.suspend_after]]);
}
