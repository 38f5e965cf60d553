import { execFileSync } from "node:child_process";
import { chmodSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** uid/gid a spawned Postgres runs as, or undefined to run as ccpd's own user. */
export interface RunAs {
  readonly uid: number;
  readonly gid: number;
  readonly name: string;
}

export const DEFAULT_INSTANCE_USER = "ccp";

function lookup(name: string): RunAs | undefined {
  try {
    const uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
    const gid = Number(execFileSync("id", ["-g", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
    return { uid, gid, name };
  } catch {
    return undefined;
  }
}

/**
 * Postgres refuses to run as root. When ccpd is root, instances run as an
 * unprivileged system user, created here if missing.
 */
export function resolveRunAs(name = DEFAULT_INSTANCE_USER): RunAs | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const existing = lookup(name);
  if (existing) return existing;
  try {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch (err) {
    throw new Error(`ccpd runs as root, so Postgres must run as an unprivileged user, but creating the system user "${name}" failed: ${String(err)}`);
  }
  const created = lookup(name);
  if (!created) throw new Error(`Created system user "${name}" but cannot look it up.`);
  return created;
}

/**
 * The instance user must be able to reach its data dir. Under /root (mode 0700)
 * it cannot, so grant search-only permission (o+x: no listing) on each ancestor
 * that lacks it, and say so. Returns the directories changed.
 */
export function ensureTraversable(dir: string, runAs: RunAs | undefined): string[] {
  if (!runAs) return [];
  const changed: string[] = [];
  let current = path.resolve(dir);
  const chain: string[] = [];
  while (true) {
    chain.push(current);
    const parent = path.dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const d of chain.reverse()) {
    const st = statSync(d, { throwIfNoEntry: false });
    if (!st) break;
    const reachable = st.uid === runAs.uid ? (st.mode & 0o100) !== 0 : st.gid === runAs.gid ? (st.mode & 0o010) !== 0 : (st.mode & 0o001) !== 0;
    if (!reachable) {
      chmodSync(d, st.mode | 0o001);
      changed.push(d);
    }
  }
  return changed;
}

export function currentOsUser(): string {
  return os.userInfo().username;
}
