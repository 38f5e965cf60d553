import pg from "pg";
import { adminClientConfig } from "../runtime/backend-socket.js";
import type { InstanceEndpoint } from "../runtime/driver.js";

/** application_name of ccp's own admin sessions (status leaves them out of the connection count). */
export const ADMIN_APPLICATION_NAME = "ccp-admin";

/**
 * One short-lived connection to an instance as ccp's admin role, over its unix
 * transport (peer authentication on a local socket): platform work (role set-up, status, listing databases), never
 * reachable by tenants. `timeoutMs` bounds the connect and each statement, so
 * a wedged instance slows a caller down by at most that much.
 */
export async function withAdmin<T>(endpoint: InstanceEndpoint, database: string, fn: (client: pg.Client) => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const client = new pg.Client({
    ...adminClientConfig(endpoint),
    database,
    application_name: ADMIN_APPLICATION_NAME,
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: timeoutMs,
    query_timeout: timeoutMs,
  });
  // An error after connect (server gone) must not crash ccpd; the pending query rejects instead.
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
