import type { DatabaseView } from "@ccp/server/client-side";
import type { ApiClient } from "../../api.js";
import { CliError, EXIT } from "../../errors.js";
import type { Output } from "../../output.js";
import { PROJECT_CONFIG, readProjectConfig, removeProjectConfig } from "../../project-config.js";
import { confirm } from "../../prompt.js";
import { getDatabase } from "./info.js";

export interface DestroyResult {
  readonly database: DatabaseView;
  /** True when the project's .cluster/config.json pointed at it and was removed. */
  readonly removedProjectConfig: boolean;
}

/** `ccp db destroy` / `rm <id|name>`: asks first unless `yes`. */
export async function destroyDatabase(
  api: ApiClient,
  ref: string,
  options: { yes: boolean; cwd?: string; ask?: (q: string) => Promise<boolean> },
): Promise<DestroyResult> {
  const db = await getDatabase(api, ref);
  if (!options.yes) {
    const ask = options.ask ?? confirm;
    if (!(await ask(`Delete database ${db.id}? This will destroy all data.`))) {
      throw new CliError("declined", `Not destroyed: database ${db.id} (${db.name}) is unchanged.`, { exitCode: EXIT.declined });
    }
  }
  const { database } = await api.request<{ database: DatabaseView }>("DELETE", `/v1/databases/${db.id}`);
  const project = readProjectConfig(options.cwd);
  const removedProjectConfig = project?.databaseId === db.id;
  if (removedProjectConfig) removeProjectConfig(options.cwd);
  return { database, removedProjectConfig };
}

export function printDestroyed(out: Output, r: DestroyResult): void {
  if (out.json) return out.data({ database: r.database, removed_project_config: r.removedProjectConfig });
  out.success(`Destroyed database ${out.style("bold", r.database.name)} (${r.database.id})`);
  if (r.removedProjectConfig) out.success(`Removed ${PROJECT_CONFIG}, which pointed at it`);
}
