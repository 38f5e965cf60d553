import { readFileSync } from "node:fs";

/**
 * Whether a pid names a live process. A zombie counts as dead: when ccpd is
 * killed its children are re-parented, and where nothing reaps them (some
 * containers' init) kill(pid, 0) would still succeed on the corpse.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 3, after the parenthesised command name (which may itself hold spaces).
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}
