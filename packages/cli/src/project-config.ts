import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { writeSecretFile, type DatabaseView } from "@ccp/server/client-side";

/** `.cluster/config.json`: the project's database and its credentials (mode 0600). */
export interface ProjectConfig {
  readonly databaseId: string;
  readonly name: string;
  readonly host: string;
  readonly token: string;
  readonly apiUrl: string;
  readonly database: string;
  readonly user: string;
  /** postgresql:// URL through ccpd's wire endpoint (with the password). */
  readonly databaseUrl?: string;
  /** Base URL of the database's SQL over HTTP (`<httpUrl>/query`); `ccp run` passes it as DATABASE_HTTP_URL. */
  readonly httpUrl?: string;
}

/**
 * The base URL a handler fetches `/query`, `/execute` and `/transaction` under.
 * Host-routed (`https://db-<id>.example.com`, the API URL's scheme and port)
 * when the database host is a real DNS name (`--domain` with wildcard DNS);
 * path-routed under the API URL (`http://127.0.0.1:7070/v1/databases/<id>`) on
 * the default domain `localhost`: Node's fetch cannot resolve `db-<id>.localhost`
 * and silently drops a `Host` header, so host routing cannot work there.
 */
export function databaseHttpUrl(apiUrl: string, id: string, host: string): string {
  if (host === "localhost" || host.endsWith(".localhost")) return `${apiUrl.replace(/\/+$/, "")}/v1/databases/${id}`;
  const url = new URL(apiUrl);
  url.hostname = host;
  return url.origin;
}

export const PROJECT_CONFIG = path.join(".cluster", "config.json");

/** The project config for a database, its token and DATABASE_URL (`database` picks another Postgres database inside it). */
export function projectConfigFor(d: DatabaseView, o: { token: string; apiUrl: string; databaseUrl: string; database?: string }): ProjectConfig {
  return {
    databaseId: d.id,
    name: d.name,
    host: d.host,
    token: o.token,
    apiUrl: o.apiUrl,
    database: o.database ?? d.database,
    user: d.user,
    databaseUrl: o.databaseUrl,
    httpUrl: databaseHttpUrl(o.apiUrl, d.id, d.host),
  };
}

export function projectConfigPath(cwd = process.cwd()): string {
  return path.join(cwd, PROJECT_CONFIG);
}

export function readProjectConfig(cwd = process.cwd()): ProjectConfig | undefined {
  try {
    return JSON.parse(readFileSync(projectConfigPath(cwd), "utf8")) as ProjectConfig;
  } catch {
    return undefined;
  }
}

export function writeProjectConfig(config: ProjectConfig, cwd = process.cwd()): string {
  const file = projectConfigPath(cwd);
  writeSecretFile(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

export function removeProjectConfig(cwd = process.cwd()): void {
  rmSync(projectConfigPath(cwd), { force: true });
}
