import pg from "pg";
import type { RunningServer } from "../../src/index.js";
import { adminClientConfig } from "../../src/runtime/backend-socket.js";

/** Whom to connect as: a role (default `clusterbase`, the owner) or the driver's admin role, on a database (default `default`). */
export interface InstanceRole {
  readonly user?: string;
  /** The runtime driver's superuser (its `adminUser`) instead of `user`. */
  readonly admin?: boolean;
  readonly database?: string;
}

/**
 * A pg.Client on a database's own Postgres server, through the runtime
 * driver's endpoint (whatever the driver: the transport ccpd itself takes),
 * not through the wire proxy or the gateway. The caller ends it.
 */
export async function connectInstance(server: RunningServer, id: string, role: InstanceRole = {}): Promise<pg.Client> {
  const admin = adminClientConfig(server.instances.endpoint(id));
  const as = role.admin ? admin : { ...admin, user: role.user ?? "clusterbase", password: undefined };
  const c = new pg.Client({ ...as, database: role.database ?? "default" });
  await c.connect();
  return c;
}

/** Run `sql` as `role` on a database's own Postgres (see connectInstance) and return the rows of its last statement. */
export async function sqlAs<T extends pg.QueryResultRow = Record<string, unknown>>(server: RunningServer, id: string, sql: string, role: InstanceRole = {}): Promise<T[]> {
  const c = await connectInstance(server, id, role);
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}
