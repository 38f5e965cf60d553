import type { InstanceEndpoint } from "../runtime/driver.js";
import { TENANT_DATABASE, TENANT_ROLE } from "../runtime/process/template.js";
import { withAdmin } from "./admin-connection.js";

// The rules live apart from the SQL so the CLI can check input without loading pg.
export * from "./provision-rules.js";
import { validateOwnerRole } from "./provision-rules.js";

/**
 * Make `owner` the tenant role of a freshly started instance, as ccp's admin
 * role, in one transaction: the new role gets exactly the template's tenant
 * privileges (LOGIN CREATEDB, nothing more), takes over the `default`
 * database (its `public` schema follows: it belongs to pg_database_owner), and
 * the template's `clusterbase` is dropped, so the instance has one tenant role
 * and no unused login.
 */
export async function installOwnerRole(endpoint: InstanceEndpoint, owner: string): Promise<void> {
  if (owner === TENANT_ROLE) return;
  validateOwnerRole(owner);
  await withAdmin(endpoint, "postgres", async (client) => {
    await client.query("BEGIN");
    await client.query(`CREATE ROLE "${owner}" LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS`);
    await client.query(`ALTER DATABASE "${TENANT_DATABASE}" OWNER TO "${owner}"`);
    await client.query(`DROP ROLE ${TENANT_ROLE}`);
    await client.query("COMMIT");
  });
}

/**
 * The tenant role's CONNECTION LIMIT: the live bound on every client session
 * (wire and gateway alike; the role has no CREATEROLE, so it cannot make another
 * login to get around it). -1: no limit of its own (max_connections bounds it).
 */
export async function applyConnectionLimit(endpoint: InstanceEndpoint, owner: string, limit: number): Promise<void> {
  await withAdmin(endpoint, "postgres", (client) => client.query(`ALTER ROLE "${owner.replaceAll('"', '""')}" CONNECTION LIMIT ${Math.trunc(limit)}`));
}
