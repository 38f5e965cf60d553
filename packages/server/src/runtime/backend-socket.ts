import net from "node:net";
import path from "node:path";
import { serialize } from "pg-protocol";
import type { InstanceEndpoint } from "./driver.js";

/** The unix socket file of an instance's Postgres server (`<socketDir>/.s.PGSQL.<port>`). */
export function backendSocketPath(endpoint: InstanceEndpoint): string {
  return path.join(endpoint.socketDir, `.s.PGSQL.${endpoint.port}`);
}

/**
 * Send Postgres a CancelRequest for the backend `pid` with its 4-byte `secret`
 * (BackendKeyData), on a connection of its own, as psql does on Ctrl+C. Fire and
 * forget: Postgres answers nothing, and an unknown key is ignored.
 */
export function sendCancelRequest(socketPath: string, pid: number, secret: number): void {
  const s = net.connect(socketPath);
  s.on("error", () => undefined);
  s.end(serialize.cancel(pid, secret));
}
