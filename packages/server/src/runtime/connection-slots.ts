/** max_connections of every instance without a connections limit (template.ts's postgresql.conf). */
export const INSTANCE_MAX_CONNECTIONS = 100;
/**
 * Connections an instance takes from clients: the wire endpoint's sessions and
 * the gateway's pool together. The rest is ccp's: superuser_reserved_connections
 * (3, Postgres' default) and headroom for ccp's own admin sessions (status,
 * backups, roles), so a full instance never locks ccp out.
 * (Its own module, free of pg, so the CLI's input rules can use it.)
 */
export const TENANT_CONNECTION_SLOTS = INSTANCE_MAX_CONNECTIONS - 3 - 7;
