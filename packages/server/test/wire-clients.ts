import { readFileSync } from "node:fs";
import pg from "pg";
import type { RunningServer } from "../src/index.js";

/** A connected node-postgres client (callers end it). */
export async function connectPg(config: string | pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client(typeof config === "string" ? { connectionString: config } : config);
  await c.connect();
  return c;
}

/**
 * A TLS connection to the wire endpoint routed by SNI (`db-<id>.localhost`) with the plain role name.
 * The chain is verified against ccpd's certificate; the host name is not, because Node (like browsers)
 * refuses single-label wildcards such as *.localhost. With a real --domain, *.<domain> verifies normally.
 */
export function tlsBySni(server: RunningServer, id: string, password: string): pg.ClientConfig {
  return {
    host: "127.0.0.1",
    port: server.wirePort,
    user: "clusterbase",
    password,
    database: "default",
    ssl: { ca: readFileSync(server.tlsCertFile, "utf8"), servername: `${id}.localhost`, checkServerIdentity: () => undefined },
  };
}
