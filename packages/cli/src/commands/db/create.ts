import type { DatabaseView } from "@ccp/server/client-side";
import type { ApiClient } from "../../api.js";
import type { Output } from "../../output.js";
import { PROJECT_CONFIG, projectConfigFor, writeProjectConfig } from "../../project-config.js";

export interface CreateResult {
  readonly database: DatabaseView;
  readonly token: string;
  readonly databaseUrl: string;
  readonly configFile: string;
}

/**
 * `ccp db create --name NAME`: create a database and save its credentials in
 * the project. With `provision` (`ccp db provision NAME -U OWNER`), its owner
 * role and password are the ones given.
 */
export async function createDatabase(
  api: ApiClient,
  name: string,
  cwd = process.cwd(),
  provision?: { owner: string; password: string },
  settings: { suspendAfter?: string } = {},
): Promise<CreateResult> {
  const body = { name, ...provision, ...(settings.suspendAfter === undefined ? {} : { suspend_after: settings.suspendAfter }) };
  const { database, token, database_url } = await api.request<{ database: DatabaseView; token: string; database_url: string }>("POST", "/v1/databases", body);
  const configFile = writeProjectConfig(projectConfigFor(database, { token, apiUrl: api.target.apiUrl, databaseUrl: database_url }), cwd);
  return { database, token, databaseUrl: database_url, configFile };
}

export function printCreated(out: Output, r: CreateResult): void {
  if (out.json) return out.data({ database: r.database, token: r.token, database_url: r.databaseUrl, config_file: r.configFile });
  out.success(`Created database ${out.style("bold", r.database.name)}`);
  out.line();
  out.fields([
    ["ID", r.database.id],
    ["Host", r.database.host],
    ["Token", `${r.token.slice(0, 12)}...`],
  ]);
  out.line();
  out.success(`Token saved to ${PROJECT_CONFIG}`);
}
