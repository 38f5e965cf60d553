import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import path from "node:path";
import type { RunningServer, ServerOptions } from "../../src/index.js";
import type { TestServer } from "./test-server.js";

/**
 * A runtime driver the lifecycle suites run against, with what a test may know
 * of it beyond the driver interface. Everything driver-specific a test looks at
 * (where a database's server runs, a pool of pre-started servers) is here, so
 * a suite runs unchanged once per driver: `for (const d of TEST_DRIVERS) suite(d)`.
 */
export interface TestDriver {
  readonly name: string;
  /** ccpd options that select it and its settings. */
  readonly options: ServerOptions;
  /** PIDs of the Postgres servers running a database, seen from the host: none for a suspended or stopped one. */
  serversOf(t: TestServer, id: string): number[];
  /** How many pre-started servers wait for a create; undefined for a driver that keeps none (tests of the pool are skipped). */
  readonly warmPool?: (server: RunningServer) => number;
  /** The WAL archive folder as the database's own Postgres sees it (basic_archive.archive_directory). */
  archiveDirSeen(server: RunningServer, id: string): string;
}

/** The process driver (the only one today): each database a postmaster of its own under `<data dir>/instances/<id>/data`. */
const processDriver: TestDriver = {
  name: "process",
  options: {},
  serversOf: (t, id) => postmastersOf(path.join(t.root, "data", "instances", id, "data")),
  warmPool: (server) => server.driver.warmPoolSize,
  archiveDirSeen: (server, id) => {
    // A sandboxed server sees only what was bound at its start: a claimed pre-started server keeps seeing
    // its pool archive folder, which the claim renamed into the store (same directory). A slot on its own
    // filesystem image keeps that folder beside it (a rename does not cross filesystems).
    if (!server.driver.isolation().find((f) => f.name === "mount-namespace")?.enforced) return server.store.walDir(id);
    const slot = realpathSync(path.dirname(server.driver.dataDir(id)));
    const instances = path.dirname(slot);
    return existsSync(path.join(instances, ".images", `${path.basename(slot)}.img`)) ? path.join(instances, ".pool-archives", path.basename(slot)) : path.join(slot, "archive");
  },
};

/** Every driver this machine runs; each lifecycle suite runs once per entry. */
export const TEST_DRIVERS: readonly TestDriver[] = [processDriver];

/** PIDs of postmasters whose working directory is `dataDir` (a server left running by a killed ccpd included). */
export function postmastersOf(dataDir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/cwd`) !== dataDir) continue;
      // Backends share the cwd; the postmaster is the one whose parent does not.
      const stat = readFileSyncSafe(`/proc/${name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (readlinkSyncSafe(`/proc/${ppid}/cwd`) !== dataDir) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function readlinkSyncSafe(p: string): string {
  try {
    return readlinkSync(p);
  } catch {
    return "";
  }
}

function readFileSyncSafe(p: string): string {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
}
