import type { DatabaseView } from "@ccp/server/client-side";
import type { ApiClient } from "./api.js";
import { projectConfigFor, writeProjectConfig } from "./project-config.js";

/** Calls of ccpd's /v1/databases API that several commands make. */

/** GET /v1/databases/:ref (`ccp db info`, and every command that names a database by id or name). */
export async function getDatabase(api: ApiClient, ref: string): Promise<DatabaseView> {
  return (await api.request<{ database: DatabaseView }>("GET", `/v1/databases/${encodeURIComponent(ref)}`)).database;
}

/** The database with its DATABASE_URL, password included (`ccp db info --show-secrets`, `ccp db use`). */
export async function getDatabaseWithSecrets(api: ApiClient, ref: string): Promise<{ database: DatabaseView; databaseUrl: string }> {
  const r = await api.request<{ database: DatabaseView; database_url: string }>("GET", `/v1/databases/${encodeURIComponent(ref)}?show_secrets=true`);
  return { database: r.database, databaseUrl: r.database_url };
}

/** POST /v1/databases/:ref/token: a new HTTP token; the previous one stops working at once. */
export async function issueToken(api: ApiClient, ref: string): Promise<{ database: DatabaseView; token: string }> {
  return api.request<{ database: DatabaseView; token: string }>("POST", `/v1/databases/${encodeURIComponent(ref)}/token`);
}

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
  settings: { suspendAfter?: string; limits?: Record<string, string | null> } = {},
): Promise<CreateResult> {
  const body = { name, ...provision, ...(settings.suspendAfter === undefined ? {} : { suspend_after: settings.suspendAfter }), ...(settings.limits ? { limits: settings.limits } : {}) };
  const { database, token, database_url } = await api.request<{ database: DatabaseView; token: string; database_url: string }>("POST", "/v1/databases", body);
  const configFile = writeProjectConfig(projectConfigFor(database, { token, apiUrl: api.target.apiUrl, databaseUrl: database_url }), cwd);
  return { database, token, databaseUrl: database_url, configFile };
}
