import type { InstanceLimits } from "./driver.js";

/**
 * Postgres settings that follow an instance's limits, on every driver:
 * - memory sizes the caches and the default per-operation memory (work_mem is a
 *   default, not a cap, in Postgres: a tenant may SET it higher; the memory limit
 *   itself is the kernel's, and a backend past it loses its own query);
 * - connections sets max_connections (plus ccp's reserved slots);
 * - cpu sets how many parallel workers a query may use (no point in four workers on half a core);
 * - storage bounds WAL kept between checkpoints (max_wal_size counts against the
 *   quota) and temporary files per process (temp_file_limit, which a tenant
 *   cannot raise: it is superuser-only).
 * Kept within what Postgres itself accepts.
 */

/** Superuser-reserved slots plus ccp's own admin sessions (see connection-slots.ts). */
export const RESERVED_CONNECTIONS = 10;

const MiB = 1024 * 1024;

export function postgresSettingsFor(limits: InstanceLimits): Record<string, string> {
  const settings: Record<string, string> = {};
  if (limits.memoryBytes !== undefined) {
    const mib = Math.floor(limits.memoryBytes / MiB);
    // A quarter for shared buffers (Postgres's own advice).
    settings["shared_buffers"] = `${Math.max(16, Math.floor(mib / 4))}MB`;
    settings["effective_cache_size"] = `${Math.max(1, Math.floor((mib * 3) / 4))}MB`;
    // Default per sort/hash: what a quarter of the memory allows across the backends at once.
    const backends = (limits.connections ?? 90) + RESERVED_CONNECTIONS;
    settings["work_mem"] = `${Math.max(64, Math.floor((mib * 1024) / 4 / backends))}kB`;
    settings["maintenance_work_mem"] = `${Math.max(1, Math.min(1024, Math.floor(mib / 8)))}MB`;
    settings["autovacuum_work_mem"] = `${Math.max(1, Math.min(256, Math.floor(mib / 16)))}MB`;
  }
  if (limits.connections !== undefined) settings["max_connections"] = String(limits.connections + RESERVED_CONNECTIONS);
  if (limits.cpu !== undefined) {
    const cores = Math.max(1, Math.floor(limits.cpu));
    // Below one core a parallel query only adds processes competing for the same quota.
    settings["max_parallel_workers_per_gather"] = String(limits.cpu < 2 ? 0 : Math.min(4, Math.floor(cores / 2)));
    settings["max_parallel_workers"] = String(Math.min(8, cores));
    settings["max_parallel_maintenance_workers"] = String(limits.cpu < 2 ? 0 : Math.min(4, Math.floor(cores / 2)));
  }
  if (limits.storageBytes !== undefined) {
    const mib = Math.floor(limits.storageBytes / MiB);
    // WAL between checkpoints: at most an eighth of the quota (Postgres's default 1 GB once the quota is 8 GiB), never below 2 segments.
    settings["max_wal_size"] = `${Math.max(64, Math.min(1024, Math.floor(mib / 8)))}MB`;
    settings["min_wal_size"] = `${Math.max(32, Math.min(80, Math.floor(mib / 16)))}MB`;
    // A runaway sort or hash spilling to disk fails on its own before it fills the quota.
    settings["temp_file_limit"] = `${Math.max(1024, Math.floor((mib * 1024) / 2))}kB`;
  }
  return settings;
}
