import pg from "pg";
import type { InstanceEndpoint } from "../runtime/driver.js";

export interface PoolSettings {
  /** Server connections per (instance, database) kept by the gateway. */
  readonly size: number;
  readonly statementTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/**
 * Connection settings every gateway session starts with. RESET ALL (part of
 * DISCARD ALL) returns to these, so a tenant's SET never outlives its request.
 */
function startupOptions(s: PoolSettings): string {
  return [
    "-c DateStyle=ISO,MDY",
    "-c TimeZone=UTC",
    "-c IntervalStyle=postgres",
    "-c bytea_output=hex",
    "-c extra_float_digits=1",
    `-c statement_timeout=${s.statementTimeoutMs}`,
    "-c application_name=ccp-gateway",
  ].join(" ");
}

/** Text in, text out: the gateway maps values itself (json-types.ts). */
export const RAW_TYPES = { getTypeParser: () => (value: string) => value };

/** One pg.Pool per (instance, database), connecting as the tenant role over the unix socket. */
export class GatewayPools {
  readonly #pools = new Map<string, pg.Pool>();
  readonly #settings: PoolSettings;

  constructor(settings: PoolSettings) {
    this.#settings = Object.freeze({ ...settings });
  }

  get(id: string, endpoint: InstanceEndpoint, user: string, database: string): pg.Pool {
    const key = `${id}\u0000${database}\u0000${user}`;
    let pool = this.#pools.get(key);
    if (!pool) {
      pool = new pg.Pool({
        host: endpoint.socketDir,
        port: endpoint.port,
        user,
        database,
        max: this.#settings.size,
        idleTimeoutMillis: this.#settings.idleTimeoutMs,
        options: startupOptions(this.#settings),
        types: RAW_TYPES,
      });
      // An idle connection whose server went away (restart, destroy) is dropped, not fatal.
      pool.on("error", () => undefined);
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /** Close every pool of an instance (destroy, restore, stop). */
  async forget(id: string): Promise<void> {
    const ends: Promise<void>[] = [];
    for (const [key, pool] of this.#pools) {
      if (key.startsWith(`${id}\u0000`)) {
        this.#pools.delete(key);
        ends.push(pool.end().catch(() => undefined));
      }
    }
    await Promise.all(ends);
  }

  async close(): Promise<void> {
    const all = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(all.map((p) => p.end().catch(() => undefined)));
  }
}

/**
 * Return a connection to its pool with no session state left: roll back an
 * open transaction, then DISCARD ALL (SET, temp tables, prepared statements,
 * advisory locks, LISTEN, cursors). A connection that cannot be reset is
 * destroyed instead of reused.
 */
export async function releaseClean(client: pg.PoolClient, broken: boolean): Promise<void> {
  if (broken) return client.release(true);
  try {
    if (client.getTransactionStatus() !== "I") await client.query("ROLLBACK");
    await client.query("DISCARD ALL");
    client.release();
  } catch {
    client.release(true);
  }
}
