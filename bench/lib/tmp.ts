import { chownSync, chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** A fresh directory under os.tmpdir(), optionally owned by another user. */
export function makeTempDir(prefix: string, owner?: Owner): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  // Search permission for others, so an instance user can reach what lies below.
  chmodSync(dir, 0o711);
  if (owner) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

export function makeDirFor(dir: string, owner?: Owner): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (owner) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
