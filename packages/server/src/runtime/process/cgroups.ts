import { existsSync, mkdirSync, readFileSync, realpathSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { InstanceLimits, InstanceUsage, IsolationFeature } from "../driver.js";

/**
 * One control group per Postgres server, with the instance's limits, on cgroup
 * v2 (one unified hierarchy) or v1 (one hierarchy per controller). Groups live
 * under `ccp/<scope>` (scope: one per ccpd data dir, so two ccpd on one host
 * never touch each other's groups); on v1 that is below ccpd's own group in each
 * hierarchy, on v2 below the hierarchy's root (v2 lets a group with processes
 * hand no controller down, and ccpd's own group has ccpd in it).
 *
 * Every write is to a file path under `root`, so tests lay a temporary directory
 * out like cgroupfs and check the files written (the v2 path cannot run on a v1 host).
 */

/** CPU quota period (µs): the kernel's default. */
export const CPU_PERIOD_US = 100_000;
/** The largest cpu.shares cgroup v1 takes. */
const V1_MAX_SHARES = 262_144;
/** The soft memory limit (v2 memory.high, v1 soft_limit_in_bytes), as a share of the hard one: reclaimed from first. */
export const SOFT_MEMORY_SHARE = 0.9;

type Controller = "memory" | "cpu" | "pids" | "io";
const CONTROLLERS: readonly Controller[] = ["memory", "cpu", "pids", "io"];
/** v1 hierarchies ccp uses: cpuacct counts the CPU time (cpu only limits it), blkio is io's v1 name. */
const V1_HIERARCHIES = ["memory", "cpu", "cpuacct", "pids", "blkio"] as const;
type V1Hierarchy = (typeof V1_HIERARCHIES)[number];

export interface CgroupsOptions {
  /** Where cgroupfs is mounted (default /sys/fs/cgroup). */
  readonly root?: string;
  /** Text of /proc/self/cgroup (ccpd's own groups). */
  readonly selfCgroup?: string;
  /** One name per ccpd data dir. */
  readonly scope: string;
}

/** Block device of a data dir, for v2 io.max ("MAJ:MIN"). */
export function deviceOf(dir: string): string {
  const dev = statSync(dir).dev;
  // glibc's dev_t layout (gnu_dev_major/minor), for the numbers a 32-bit dev_t holds.
  const major = (dev >>> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >>> 12) & 0xfff00);
  return `${major}:${minor}`;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

function readNumber(file: string): number | undefined {
  const text = readText(file);
  if (text === undefined) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

function statField(file: string, field: string): number | undefined {
  const text = readText(file);
  const line = text?.split("\n").find((l) => l.startsWith(`${field} `));
  return line ? Number(line.split(" ")[1]) : undefined;
}

export class Cgroups {
  readonly version: 1 | 2;
  /** v2: "unified" → parent dir; v1: hierarchy → parent dir (only the usable ones). */
  readonly #parents: ReadonlyMap<string, string>;
  readonly #features: readonly IsolationFeature[];

  private constructor(version: 1 | 2, parents: Map<string, string>, features: IsolationFeature[]) {
    this.version = version;
    this.#parents = parents;
    this.#features = Object.freeze(features);
  }

  /**
   * Find the host's cgroups and make ccp's parent groups; `Cgroups` when at
   * least one controller is usable, else a sentence saying why none is.
   */
  static detect(options: CgroupsOptions): Cgroups | string {
    const root = options.root ?? "/sys/fs/cgroup";
    if (existsSync(path.join(root, "cgroup.controllers"))) return Cgroups.#detectV2(root, options.scope);
    let self: string;
    try {
      self = options.selfCgroup ?? readFileSync("/proc/self/cgroup", "utf8");
    } catch {
      return "no /proc/self/cgroup: this kernel has no cgroups";
    }
    return Cgroups.#detectV1(root, self, options.scope);
  }

  static #detectV2(root: string, scope: string): Cgroups | string {
    const available = (readText(path.join(root, "cgroup.controllers")) ?? "").split(/\s+/);
    const parent = path.join(root, "ccp", scope);
    try {
      mkdirSync(parent, { recursive: true });
    } catch (err) {
      return `cannot make ${parent} (${(err as NodeJS.ErrnoException).code ?? String(err)}): ccpd needs root or a delegated cgroup v2 subtree`;
    }
    // Hand each controller down to the groups below, level by level (one write each: a missing one does
    // not block the rest); enabled where the last level lists it right after its write.
    const enabled: string[] = [];
    for (const c of CONTROLLERS) {
      if (!available.includes(c)) continue;
      try {
        for (const dir of [root, path.join(root, "ccp"), parent]) writeFileSync(path.join(dir, "cgroup.subtree_control"), `+${c}`);
        const listed = (readText(path.join(parent, "cgroup.subtree_control")) ?? "").split(/\s+/);
        if (listed.includes(c) || listed.includes(`+${c}`)) enabled.push(c);
      } catch {
        // reported below as not enabled
      }
    }
    const features = CONTROLLERS.map((c): IsolationFeature => {
      if (enabled.includes(c)) return { name: c, enforced: true, detail: `cgroup v2 (${c} controller, ${path.join(root, "ccp", scope)})` };
      if (!available.includes(c)) return { name: c, enforced: false, detail: `cgroup v2 has no ${c} controller on this host` };
      return { name: c, enforced: false, detail: `cgroup v2 ${c} controller could not be enabled for ${parent} (cgroup.subtree_control)` };
    });
    if (!features.some((f) => f.enforced)) return `cgroup v2: no controller could be enabled under ${parent}`;
    return new Cgroups(2, new Map([["unified", parent]]), features);
  }

  static #detectV1(root: string, self: string, scope: string): Cgroups | string {
    const parents = new Map<string, string>();
    const why = new Map<V1Hierarchy, string>();
    const own = new Map<string, string>();
    for (const line of self.split("\n")) {
      const [, names, where] = line.split(":");
      if (names === undefined || where === undefined) continue;
      for (const n of names.split(",")) own.set(n, where);
    }
    for (const h of V1_HIERARCHIES) {
      const mount = path.join(root, h);
      const where = own.get(h);
      if (where === undefined || !existsSync(mount)) {
        why.set(h, `no cgroup v1 ${h} hierarchy on this host`);
        continue;
      }
      const parent = path.join(mount, where, "ccp", scope);
      try {
        mkdirSync(parent, { recursive: true });
        // On v1 the tasks left in the root group (ccpd, clients) each weigh as much as one group: with the
        // default 1024 shares all of ccp's Postgres processes together would weigh as one such task, and a
        // sandboxed database would get half the CPU a plain one gets under load. The ccp groups weigh the
        // most v1 allows; the databases share it by their own weights (apply: cpu.shares by CPU limit).
        if (h === "cpu") for (const dir of [path.join(mount, where, "ccp"), parent]) writeFileSync(path.join(dir, "cpu.shares"), String(V1_MAX_SHARES));
        parents.set(h, parent);
      } catch (err) {
        why.set(h, `cannot make ${parent} (${(err as NodeJS.ErrnoException).code ?? String(err)}): ccpd needs root`);
      }
    }
    const has = (h: V1Hierarchy) => parents.has(h);
    const features: IsolationFeature[] = [
      has("memory")
        ? { name: "memory", enforced: true, detail: `cgroup v1 (memory.limit_in_bytes, memory.soft_limit_in_bytes under ${parents.get("memory")})` }
        : { name: "memory", enforced: false, detail: why.get("memory") ?? "" },
      has("cpu")
        ? { name: "cpu", enforced: true, detail: `cgroup v1 (cpu.cfs_quota_us under ${parents.get("cpu")})` }
        : { name: "cpu", enforced: false, detail: why.get("cpu") ?? "" },
      has("pids")
        ? { name: "pids", enforced: true, detail: `cgroup v1 (pids.max under ${parents.get("pids")})` }
        : { name: "pids", enforced: false, detail: why.get("pids") ?? "" },
      // blkio throttling on v1 only sees direct I/O: Postgres writes through the page cache, so it would not hold.
      { name: "io", enforced: false, detail: "cgroup v1: blkio cannot limit writes through the page cache; I/O bandwidth limits need cgroup v2" },
    ];
    if (parents.size === 0) return `cgroup v1: ${[...why.values()].join("; ")}`;
    return new Cgroups(1, parents, features);
  }

  /** memory, cpu, pids and io: which this host enforces and how. */
  features(): readonly IsolationFeature[] {
    return this.#features;
  }

  enforces(name: Controller): boolean {
    return this.#features.some((f) => f.name === name && f.enforced);
  }

  /** The group's directory per hierarchy (v2: one, "unified"). */
  dirs(name: string): Record<string, string> {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) throw new Error(`Not a cgroup name: ${name}`);
    const dirs: Record<string, string> = {};
    for (const [h, parent] of this.#parents) dirs[h] = path.join(parent, name);
    return dirs;
  }

  /** Make the group (kept if it exists) and return the directories a process joins (one per hierarchy). */
  create(name: string): string[] {
    const joined = new Set<string>();
    for (const dir of Object.values(this.dirs(name))) {
      mkdirSync(dir, { recursive: true });
      // Co-mounted v1 controllers (cpu,cpuacct) are one hierarchy: join it once.
      joined.add(realpathSync(dir));
    }
    return [...joined];
  }

  exists(name: string): boolean {
    return Object.values(this.dirs(name)).some((d) => existsSync(d));
  }

  /**
   * Write the limits into an existing group (an absent limit: unlimited).
   * Returns the limits applied; one the kernel refused (memory below what the
   * group uses now, say) is left out, to be applied at the next start.
   */
  apply(name: string, limits: InstanceLimits, dataDir?: string): (keyof InstanceLimits)[] {
    const d = this.dirs(name);
    const applied: (keyof InstanceLimits)[] = [];
    const attempt = (key: keyof InstanceLimits, write: () => void) => {
      try {
        write();
        applied.push(key);
      } catch {
        // left for the next start
      }
    };
    const put = (dir: string | undefined, file: string, value: string) => {
      if (dir === undefined) throw new Error("controller not available");
      writeFileSync(path.join(dir, file), value);
    };
    const mem = limits.memoryBytes;
    const soft = mem === undefined ? undefined : Math.floor(mem * SOFT_MEMORY_SHARE);
    const quota = limits.cpu === undefined ? undefined : Math.max(1_000, Math.round(limits.cpu * CPU_PERIOD_US));
    if (this.version === 2) {
      const u = d["unified"];
      if (this.enforces("memory")) {
        attempt("memoryBytes", () => {
          // memory.high first when lowering (throttles and reclaims before the hard limit bites).
          put(u, "memory.high", soft === undefined ? "max" : String(soft));
          put(u, "memory.max", mem === undefined ? "max" : String(mem));
          if (u !== undefined && existsSync(path.join(u, "memory.swap.max"))) put(u, "memory.swap.max", mem === undefined ? "max" : "0");
        });
      }
      if (this.enforces("cpu")) attempt("cpu", () => put(u, "cpu.max", `${quota === undefined ? "max" : String(quota)} ${CPU_PERIOD_US}`));
      if (this.enforces("pids")) attempt("pids", () => put(u, "pids.max", limits.pids === undefined ? "max" : String(limits.pids)));
      if (this.enforces("io") && dataDir !== undefined) {
        const bps = limits.ioBytesPerSec === undefined ? "max" : String(Math.floor(limits.ioBytesPerSec));
        attempt("ioBytesPerSec", () => put(u, "io.max", `${deviceOf(dataDir)} rbps=${bps} wbps=${bps}`));
      }
    } else {
      if (this.enforces("memory")) {
        attempt("memoryBytes", () => {
          const m = d["memory"];
          put(m, "memory.limit_in_bytes", mem === undefined ? "-1" : String(mem));
          put(m, "memory.soft_limit_in_bytes", soft === undefined ? "-1" : String(soft));
        });
      }
      if (this.enforces("cpu")) {
        attempt("cpu", () => {
          put(d["cpu"], "cpu.cfs_period_us", String(CPU_PERIOD_US));
          put(d["cpu"], "cpu.cfs_quota_us", quota === undefined ? "-1" : String(quota));
          // Under contention databases share the ccp group by their CPU limits (a core: 1024 × 64, the weight of 64 root tasks).
          put(d["cpu"], "cpu.shares", String(Math.min(V1_MAX_SHARES, Math.max(2, Math.round((limits.cpu ?? 4) * 65_536)))));
        });
      }
      if (this.enforces("pids")) attempt("pids", () => put(d["pids"], "pids.max", limits.pids === undefined ? "max" : String(limits.pids)));
    }
    return applied.filter((k) => limits[k] !== undefined);
  }

  /** What the group's processes use now, as the kernel counts it (absent: no group, or not counted here). */
  usage(name: string): Pick<InstanceUsage, "memoryBytes" | "cpuSeconds" | "pids"> {
    const d = this.dirs(name);
    const usage: { memoryBytes?: number; cpuSeconds?: number; pids?: number } = {};
    const set = (key: keyof typeof usage, value: number | undefined) => {
      if (value !== undefined && Number.isFinite(value)) usage[key] = value;
    };
    if (this.version === 2) {
      const u = d["unified"] ?? "";
      set("memoryBytes", readNumber(path.join(u, "memory.current")));
      const usec = statField(path.join(u, "cpu.stat"), "usage_usec");
      set("cpuSeconds", usec === undefined ? undefined : usec / 1e6);
      set("pids", readNumber(path.join(u, "pids.current")));
    } else {
      if (d["memory"]) set("memoryBytes", readNumber(path.join(d["memory"], "memory.usage_in_bytes")));
      const ns = d["cpuacct"] ? readNumber(path.join(d["cpuacct"], "cpuacct.usage")) : undefined;
      set("cpuSeconds", ns === undefined ? undefined : ns / 1e9);
      if (d["pids"]) set("pids", readNumber(path.join(d["pids"], "pids.current")));
    }
    return usage;
  }

  /** Remove the group once its processes are gone (they may take a moment to be reaped). */
  async remove(name: string, waitMs = 5_000): Promise<void> {
    for (const dir of Object.values(this.dirs(name))) {
      const until = Date.now() + waitMs;
      for (;;) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOENT") break;
          if (code !== "EBUSY" || Date.now() > until) break;
          await sleep(20);
        }
      }
    }
  }

  /**
   * cgroup v1: the `tasks` file of `ccp/copies`, a group beside the scopes
   * with the most cpu.shares v1 allows, made if missing; ccpd's backup and
   * restore threads (backups/codec-pool.ts) move into it. Left in the root
   * group they weighed 1024, one 256th of ccp's groups, and waited for a CPU
   * most of the time whenever a database (of any ccpd on the host) was busy:
   * 90 s runnable-but-waiting for 3.6 s of CPU in one 1.2 GiB backup. In it,
   * a backup or restore weighs what one ccpd's databases weigh together.
   * Shared by every ccpd on the host and never removed, like `ccp` itself.
   * Undefined on v2 (a thread cannot leave its process's group there) or
   * when the group cannot be made.
   */
  copiesGroupTasks(): string | undefined {
    const parent = this.version === 1 ? this.#parents.get("cpu") : undefined;
    if (parent === undefined) return undefined;
    const dir = path.join(path.dirname(parent), "copies");
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, "cpu.shares"), String(V1_MAX_SHARES));
      return path.join(dir, "tasks");
    } catch {
      return undefined;
    }
  }

  /** Remove this ccpd's scope group when no group is left in it (shutdown). */
  removeScope(): void {
    for (const parent of this.#parents.values()) {
      try {
        rmdirSync(parent);
      } catch {
        // groups left (a server still running) or already gone
      }
    }
  }
}
