/**
 * The DATABASE_URL of a database through the wire endpoint. The user name
 * carries the instance (`<role>.db-<hex>`), so it routes without TLS/SNI and
 * works unchanged with psql, node-postgres, Prisma and Drizzle.
 */
export function databaseUrl(o: { id: string; role: string; password: string; database: string; domain: string; listen: string; wirePort: number }): string {
  const wildcard = o.listen === "0.0.0.0" || o.listen === "::";
  const host = o.domain === "localhost" ? (wildcard ? "127.0.0.1" : o.listen.includes(":") ? `[${o.listen}]` : o.listen) : `${o.id}.${o.domain}`;
  const user = encodeURIComponent(`${o.role}.${o.id}`);
  return `postgresql://${user}:${encodeURIComponent(o.password)}@${host}:${o.wirePort}/${encodeURIComponent(o.database)}`;
}
