import { chmodSync, mkdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeSecretFile } from "@ccp/server/client-side";

/** Lines kept per database, as readline's own default ceiling is 30. */
export const HISTORY_SIZE = 1000;

/** Lines not worth recalling. */
const SKIP = new Set(["\\q"]);

/**
 * `$XDG_DATA_HOME/ccp/history/<db-id>` (else `~/.local/share/ccp/history/<db-id>`):
 * one file per database, since queries typed against one rarely make sense on another.
 */
export function historyFile(databaseId: string, env: NodeJS.ProcessEnv = process.env): string {
  const dataHome = env["XDG_DATA_HOME"] || path.join(env["HOME"] || os.homedir(), ".local", "share");
  return path.join(dataHome, "ccp", "history", databaseId.replace(/[^\w.-]/g, "_"));
}

/** The saved history, newest first (the order readline's `history` option takes). */
export function loadHistory(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .reverse()
    .slice(0, HISTORY_SIZE);
}

/**
 * Save readline's history (newest first) oldest first, one entry a line; the
 * file is 0600 and its directory 0700, as queries may hold secrets.
 */
export function saveHistory(file: string, history: readonly string[]): void {
  const entries = history.filter((l) => !SKIP.has(l.trim()) && !l.includes("\n")).slice(0, HISTORY_SIZE);
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  writeSecretFile(file, entries.length ? `${[...entries].reverse().join("\n")}\n` : "");
}
