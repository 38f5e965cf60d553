import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { writeSecretFile } from "@ccp/server";

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
}

export const PROJECT_CONFIG = path.join(".cluster", "config.json");

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
