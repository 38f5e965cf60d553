import type { InstanceLimits } from "./driver.js";

/**
 * Postgres settings that follow an instance's limits, on every driver: memory
 * sizes its caches and the default per-operation memory, connections its
 * max_connections. Kept within what Postgres itself accepts.
 */

/** Superuser-reserved slots plus ccp's own admin sessions (see config.ts: TENANT_CONNECTION_SLOTS). */
export const RESERVED_CONNECTIONS = 10;

const MiB = 1024 * 1024;

export function postgresSettingsFor(limits: InstanceLimits): Record<string, string> {
  const settings: Record<string, string> = {};
  if (limits.memoryBytes !== undefined) {
    const mib = Math.floor(limits.memoryBytes / MiB);
    // A quarter for shared buffers (Postgres's own advice), at least its 128 kB floor in MiB terms.
    settings["shared_buffers"] = `${Math.max(1, Math.floor(mib / 4))}MB`;
    settings["effective_cache_size"] = `${Math.max(1, Math.floor((mib * 3) / 4))}MB`;
    // Default per sort/hash: what a quarter of the memory allows across the backends at once.
    const backends = (limits.connections ?? 90) + RESERVED_CONNECTIONS;
    settings["work_mem"] = `${Math.max(64, Math.floor((mib * 1024) / 4 / backends))}kB`;
    settings["maintenance_work_mem"] = `${Math.max(1, Math.min(1024, Math.floor(mib / 8)))}MB`;
  }
  if (limits.connections !== undefined) settings["max_connections"] = String(limits.connections + RESERVED_CONNECTIONS);
  return settings;
}
