import type { Catalog } from "../catalog/catalog.js";
import type { InstanceEndpoint } from "../runtime/driver.js";
import { ADMIN_APPLICATION_NAME, withAdmin } from "./admin-connection.js";

/** Live figures of a running instance, read as ccp's admin role. */
export interface LiveStatus {
  readonly pg_version: string;
  /** Sum of pg_database_size over every database of the instance. */
  readonly size_bytes: number;
  /** Client sessions of tenants: ccp's admin sessions and the gateway's pooled connections are not counted. */
  readonly connections: number;
  readonly max_connections: number;
  readonly started_at: string;
  readonly uptime_seconds: number;
  /** Postgres databases inside the instance (not templates, not `postgres`). */
  readonly databases: string[];
}

/** application_name of the gateway's pooled sessions (gateway/pools.ts). */
const GATEWAY_APPLICATION_NAME = "ccp-gateway";

/** Tenant databases: what the owner can use (template0/1 and ccp's `postgres` are the platform's). */
const TENANT_DATABASES_SQL = "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY datname";

export async function liveStatus(endpoint: InstanceEndpoint, timeoutMs = 5_000): Promise<LiveStatus> {
  return withAdmin(
    endpoint,
    "postgres",
    async (client) => {
      const { rows } = await client.query<{ version: string; size: string; connections: number; max_connections: number; started_at: Date; uptime: number }>(
        `SELECT current_setting('server_version') AS version,
                (SELECT sum(pg_database_size(oid)) FROM pg_database)::int8::text AS size,
                (SELECT count(*) FROM pg_stat_activity
                  WHERE backend_type = 'client backend'
                    AND usename <> $1 -- NULL while still authenticating: ccp's own connections (metrics readings) included
                    AND application_name NOT IN ($2, $3))::int AS connections,
                current_setting('max_connections')::int AS max_connections,
                pg_postmaster_start_time() AS started_at,
                extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime`,
        [endpoint.admin.user, ADMIN_APPLICATION_NAME, GATEWAY_APPLICATION_NAME],
      );
      const r = rows[0] as (typeof rows)[number];
      const dbs = await client.query<{ datname: string }>(TENANT_DATABASES_SQL);
      return {
        pg_version: r.version,
        size_bytes: Number(r.size),
        connections: r.connections,
        max_connections: r.max_connections,
        started_at: r.started_at.toISOString(),
        uptime_seconds: Math.floor(r.uptime),
        databases: dbs.rows.map((d) => d.datname),
      };
    },
    timeoutMs,
  );
}

/** The tenant databases of a running instance; bounded by `timeoutMs` so listing many instances stays fast. */
export async function tenantDatabases(endpoint: InstanceEndpoint, timeoutMs = 1_000): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timed out")), timeoutMs);
  });
  try {
    return await Promise.race([
      withAdmin(endpoint, "postgres", async (client) => (await client.query<{ datname: string }>(TENANT_DATABASES_SQL)).rows.map((d) => d.datname), timeoutMs),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * When the database's newest finished backup was taken, or null when it has
 * none (or the catalog cannot say: status shows what it can).
 */
export async function lastBackupAt(catalog: Catalog, databaseId: string): Promise<string | null> {
  try {
    return (await catalog.backups.lastReadyAt(databaseId))?.toISOString() ?? null;
  } catch {
    return null;
  }
}

/** Client sessions of tenants now (gateway pool included: it counts against the connections limit too). */
export async function tenantConnections(endpoint: InstanceEndpoint, timeoutMs = 2_000): Promise<number> {
  return withAdmin(
    endpoint,
    "postgres",
    async (client) => {
      const { rows } = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename <> $1 AND application_name <> $2",
        [endpoint.admin.user, ADMIN_APPLICATION_NAME],
      );
      return rows[0]?.n ?? 0;
    },
    timeoutMs,
  );
}
