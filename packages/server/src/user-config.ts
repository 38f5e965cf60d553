import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** What the CLI needs to reach a ccpd: saved by ccpd on first start, or by `ccp login`. */
export interface UserConfig {
  readonly apiUrl: string;
  readonly token: string;
}

export function userConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env["XDG_CONFIG_HOME"] || path.join(os.homedir(), ".config");
  return path.join(base, "ccp");
}

export function userConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(userConfigDir(env), "config.json");
}

export function readUserConfig(env: NodeJS.ProcessEnv = process.env): UserConfig | undefined {
  try {
    const parsed = JSON.parse(readFileSync(userConfigPath(env), "utf8")) as Partial<UserConfig>;
    if (typeof parsed.apiUrl === "string" && typeof parsed.token === "string") return { apiUrl: parsed.apiUrl, token: parsed.token };
  } catch {
    // missing or unreadable: treated as not logged in
  }
  return undefined;
}

/** Write a secrets file atomically with mode 0600 (its directory 0700). */
export function writeSecretFile(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function writeUserConfig(config: UserConfig, env: NodeJS.ProcessEnv = process.env): string {
  const file = userConfigPath(env);
  writeSecretFile(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}
