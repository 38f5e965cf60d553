import os from "node:os";
import { CcpError } from "../errors.js";
import type { InstanceLimits, InstanceUsage, IsolationFeature } from "../runtime/driver.js";
import { TENANT_CONNECTION_SLOTS } from "../runtime/connection-slots.js";

/**
 * Per-database limits as users write them (#15): sizes with a unit ("512MiB",
 * "2GiB", "1.5GB"), CPU in cores, counts as integers. Validated here once for
 * the API, the config and the CLI; the driver gets plain numbers (InstanceLimits).
 */

/** The names users write (API fields, CLI flags), each mapped to its InstanceLimits field. */
export const LIMIT_NAMES = ["memory", "cpu", "storage", "connections", "pids", "io"] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

export const LIMIT_FIELD: Readonly<Record<LimitName, keyof InstanceLimits>> = Object.freeze({
  memory: "memoryBytes",
  cpu: "cpu",
  storage: "storageBytes",
  connections: "connections",
  pids: "pids",
  io: "ioBytesPerSec",
});

const KiB = 1024;
const MiB = KiB * 1024;
const GiB = MiB * 1024;

/** Binary units (KiB, MiB, GiB, TiB; also K/M/G/T and Ki/Mi/Gi/Ti) are powers of 1024; SI ones (kB, MB, GB, TB) of 1000. */
const UNITS: Readonly<Record<string, number>> = Object.freeze({
  b: 1,
  k: KiB, ki: KiB, kib: KiB, kb: 1e3,
  m: MiB, mi: MiB, mib: MiB, mb: 1e6,
  g: GiB, gi: GiB, gib: GiB, gb: 1e9,
  t: GiB * 1024, ti: GiB * 1024, tib: GiB * 1024, tb: 1e12,
});

const MINIMUM: Readonly<Record<LimitName, number>> = Object.freeze({
  // Below this Postgres itself (shared buffers, a few backends, autovacuum) does not fit.
  memory: 128 * MiB,
  cpu: 0.05,
  // A fresh instance is ~40 MB of data plus its WAL segments.
  storage: 128 * MiB,
  connections: 1,
  // The postmaster, its auxiliary processes and ccp's reserved sessions need ~25.
  pids: 32,
  io: MiB,
});

export const SIZE_HINT = "Write a size with a unit: 512MiB, 2GiB, 1.5GB (KiB/MiB/GiB/TiB are powers of 1024, kB/MB/GB/TB of 1000).";

/** Bytes from "512MiB", "2GiB", "1.5GB", "100MB" or an integer number of bytes (API only). */
export function parseSize(input: unknown, what: string): number {
  if (typeof input === "number" && Number.isSafeInteger(input) && input > 0) return input;
  const text = typeof input === "string" ? input.trim() : "";
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(text);
  const factor = m ? UNITS[(m[2] as string).toLowerCase()] : undefined;
  if (!m || factor === undefined) {
    throw new CcpError("invalid_request", `Invalid ${what} ${JSON.stringify(input)}: not a size with a unit.`, { hint: SIZE_HINT });
  }
  return Math.round(Number(m[1]) * factor);
}

/** "512MiB", "2GiB", "1.5GiB", "123456B": the shortest exact-enough binary form. */
export function formatSize(bytes: number): string {
  for (const [unit, f] of [["TiB", GiB * 1024], ["GiB", GiB], ["MiB", MiB], ["KiB", KiB]] as const) {
    if (bytes >= f) {
      const v = bytes / f;
      return `${Number.isInteger(v) ? v : Number(v.toFixed(v < 10 ? 2 : 1))}${unit}`;
    }
  }
  return `${bytes}B`;
}

function parseCount(input: unknown, what: string): number {
  const n = typeof input === "string" && /^\d+$/.test(input.trim()) ? Number(input) : input;
  if (typeof n !== "number" || !Number.isSafeInteger(n)) {
    throw new CcpError("invalid_request", `Invalid ${what} ${JSON.stringify(input)}: not a whole number.`, { hint: `Give ${what} as a whole number, e.g. 50.` });
  }
  return n;
}

function parseCpu(input: unknown): number {
  const n = typeof input === "string" && /^\d+(\.\d+)?$/.test(input.trim()) ? Number(input) : input;
  if (typeof n !== "number" || !Number.isFinite(n)) {
    throw new CcpError("invalid_request", `Invalid cpu ${JSON.stringify(input)}: not a number of cores.`, { hint: "Give cpu in cores, e.g. 0.5 for half a core or 2 for two." });
  }
  return n;
}

/** Host bounds checked against (injected in tests). */
export interface HostCapacity {
  readonly cores: number;
  readonly memoryBytes: number;
}

export function hostCapacity(): HostCapacity {
  return { cores: os.availableParallelism(), memoryBytes: os.totalmem() };
}

/**
 * Validate limits as written by a user. `null` for a field means "back to the
 * server's default" (kept as null); undefined/absent means "not given".
 */
export function parseLimits(input: unknown, host: HostCapacity = hostCapacity()): Partial<Record<LimitName, number | null>> {
  if (input === undefined || input === null) return {};
  if (typeof input !== "object" || Array.isArray(input)) {
    throw new CcpError("invalid_request", "limits must be an object such as { \"memory\": \"512MiB\", \"cpu\": 0.5 }.", { hint: `Fields: ${LIMIT_NAMES.join(", ")}.` });
  }
  const out: Partial<Record<LimitName, number | null>> = {};
  for (const [key, raw] of Object.entries(input as Record<string, unknown>)) {
    if (!(LIMIT_NAMES as readonly string[]).includes(key)) {
      throw new CcpError("invalid_request", `Unknown limit "${key}".`, { hint: `Limits are ${LIMIT_NAMES.join(", ")}.` });
    }
    const name = key as LimitName;
    if (raw === undefined) continue;
    if (raw === null) {
      out[name] = null;
      continue;
    }
    out[name] = checkLimit(name, raw, host);
  }
  return out;
}

function checkLimit(name: LimitName, raw: unknown, host: HostCapacity): number {
  const v = name === "cpu" ? parseCpu(raw) : name === "connections" || name === "pids" ? parseCount(raw, name) : parseSize(raw, name);
  const min = MINIMUM[name];
  const shown = (x: number) => (name === "cpu" || name === "connections" || name === "pids" ? String(x) : formatSize(x));
  if (v < min) {
    throw new CcpError("invalid_request", `${name} ${shown(v)} is too small: the minimum is ${shown(min)}.`, { hint: `Give ${name} of at least ${shown(min)}.` });
  }
  const max = name === "cpu" ? host.cores : name === "memory" ? host.memoryBytes : name === "connections" ? TENANT_CONNECTION_SLOTS : undefined;
  if (max !== undefined && v > max) {
    const why = name === "cpu" ? `this host has ${host.cores} cores` : name === "memory" ? `this host has ${formatSize(host.memoryBytes)} of memory` : `each database accepts at most ${max} client connections`;
    throw new CcpError("invalid_request", `${name} ${shown(v)} is too large: ${why}.`, { hint: `Give ${name} of at most ${shown(max)}.` });
  }
  return v;
}

/** Own limits (catalog) over server defaults: what the driver enforces. A field absent from both is unlimited. */
export function effectiveLimits(own: Partial<Record<LimitName, number | null>>, defaults: InstanceLimits): InstanceLimits {
  const out: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    const field = LIMIT_FIELD[name];
    const v = own[name] ?? defaults[field];
    if (v !== undefined && v !== null) out[field] = v;
  }
  checkCoherent(out as InstanceLimits);
  return out as InstanceLimits;
}

/** Limits that are valid one by one but not together (the driver would start a server that cannot run). */
export function checkCoherent(l: InstanceLimits): void {
  if (l.pids !== undefined) {
    const need = (l.connections ?? TENANT_CONNECTION_SLOTS) + 25;
    if (l.pids < need) {
      throw new CcpError("invalid_request", `pids ${l.pids} is too few for ${l.connections ?? TENANT_CONNECTION_SLOTS} connections: Postgres needs a process per connection plus ~25 of its own.`, {
        hint: `Give pids of at least ${need}, or fewer connections.`,
      });
    }
  }
}

/** One limit as info and the API show it: the limit, where it comes from, what is used, and whether something enforces it. */
export interface LimitView {
  readonly name: LimitName;
  /** Bytes, cores, connections or processes; null: unlimited. */
  readonly limit: number | null;
  /** "database": set on this database; "default": the server's; "none": unlimited. */
  readonly source: "database" | "default" | "none";
  /** Current usage in the same unit; null when not measurable here (or not running). */
  readonly usage: number | null;
  readonly enforced: boolean;
  /** How it is enforced, or why not. */
  readonly detail: string;
}

/** cpu: CPU seconds used since the instance started (a quota in cores has no "current" value to compare). */
const USAGE_OF: Partial<Record<LimitName, keyof InstanceUsage>> = { memory: "memoryBytes", cpu: "cpuSeconds", storage: "storageBytes", pids: "pids" };

/** Which isolation feature enforces each limit (IsolationFeature.name). */
const FEATURE_OF: Readonly<Record<LimitName, string>> = { memory: "memory", cpu: "cpu", storage: "storage", connections: "connections", pids: "pids", io: "io" };

export function limitViews(
  own: Partial<Record<LimitName, number | null>>,
  defaults: InstanceLimits,
  usage: InstanceUsage,
  isolation: readonly IsolationFeature[],
  connectionsInUse: number | null,
): LimitView[] {
  return LIMIT_NAMES.map((name) => {
    const field = LIMIT_FIELD[name];
    const ownValue = own[name];
    const limit = ownValue ?? defaults[field] ?? null;
    const source = ownValue !== undefined && ownValue !== null ? "database" : limit === null ? "none" : "default";
    const key = USAGE_OF[name];
    const used = name === "connections" ? connectionsInUse : key ? (usage[key] ?? null) : null;
    const feature = isolation.find((f) => f.name === FEATURE_OF[name]);
    const enforced = feature?.enforced ?? false;
    const detail = feature?.detail ?? `not enforced by this runtime`;
    return { name, limit, source, usage: used, enforced: limit !== null && enforced, detail: limit === null ? "unlimited" : detail };
  });
}

/** Limits as the API writes them back: sizes as numbers of bytes. */
export function ownLimitsJson(own: Partial<Record<LimitName, number | null>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(own)) if (v !== null && v !== undefined) out[k] = v;
  return out;
}
