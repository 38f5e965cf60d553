import { readlinkSync, writeFileSync } from "node:fs";

/**
 * Where ccpd's copy threads (backup and restore workers, backups/codec-pool.ts)
 * go for CPU: Cgroups.copiesGroupTasks of the process driver that set cgroups
 * up, asked again for each new thread (it remakes the group if something
 * removed it meanwhile); none without cgroups v1.
 */
let copiesTasks: (() => string | undefined) | undefined;

export function setCopiesCgroup(tasksFile: (() => string | undefined) | undefined): void {
  // A second ccpd in the process without cgroups (tests) does not undo the first's.
  if (tasksFile !== undefined) copiesTasks = tasksFile;
}

/** The `tasks` file a new copy thread joins, or undefined. */
export function copiesCgroup(): string | undefined {
  return copiesTasks?.();
}

/**
 * Move the calling thread (not its process: v1 `tasks` takes a thread id) into
 * the copies group. False when it could not (the thread stays where it was).
 */
export function joinCopiesCgroup(tasksFile: string): boolean {
  try {
    const tid = readlinkSync("/proc/thread-self").split("/").pop() ?? "";
    writeFileSync(tasksFile, tid);
    return true;
  } catch {
    return false;
  }
}
