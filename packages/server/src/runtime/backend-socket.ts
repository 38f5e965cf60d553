import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import type { ClientConfig } from "pg";
import { serialize } from "pg-protocol";
import type { InstanceEndpoint, InstanceTransport } from "./driver.js";

/** The unix socket file of a unix transport (`<socketDir>/.s.PGSQL.<port>`). */
function socketPath(t: Extract<InstanceTransport, { kind: "unix" }>): string {
  return path.join(t.socketDir, `.s.PGSQL.${t.port}`);
}

/**
 * The unix socket file of an instance's Postgres server, for callers that speak to
 * it over a socket path (the wire endpoint's backend stage). A TCP endpoint has none.
 */
export function backendSocketPath(endpoint: InstanceEndpoint): string {
  const t = endpoint.transport;
  if (t.kind !== "unix") throw new Error(`instance endpoint is ${t.kind}, not a unix socket`);
  return socketPath(t);
}

/**
 * A raw connection to an instance's Postgres, whatever its transport: unix socket,
 * or TCP with TLS negotiated directly (sslnegotiation=direct, ALPN "postgresql").
 * Resolves once connected (TLS handshake done).
 */
export function connectBackend(endpoint: InstanceEndpoint): Promise<net.Socket> {
  const t = endpoint.transport;
  return new Promise((resolve, reject) => {
    let s: net.Socket;
    if (t.kind === "unix") s = net.connect(socketPath(t));
    else if (t.tls === false) s = net.connect(t.port, t.host);
    else s = tls.connect({ host: t.host, port: t.port, servername: t.tls.servername ?? t.host, ...(t.tls.ca ? { ca: t.tls.ca } : {}), ALPNProtocols: ["postgresql"] });
    const ready = t.kind === "tcp" && t.tls !== false ? "secureConnect" : "connect";
    s.once(ready, () => {
      s.removeListener("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

/** node-postgres settings for an admin session on an instance. */
export function adminClientConfig(endpoint: InstanceEndpoint): ClientConfig {
  const t = endpoint.transport;
  const auth = { user: endpoint.admin.user, ...(endpoint.admin.password === undefined ? {} : { password: endpoint.admin.password }) };
  if (t.kind === "unix") return { host: t.socketDir, port: t.port, ...auth };
  return { host: t.host, port: t.port, ...auth, ...(t.tls === false ? {} : { ssl: { ...(t.tls.ca ? { ca: t.tls.ca } : {}), servername: t.tls.servername ?? t.host } }) };
}

/**
 * Send Postgres a CancelRequest for the backend `pid` with its 4-byte `secret`
 * (BackendKeyData), on a connection of its own, as psql does on Ctrl+C. Fire and
 * forget: Postgres answers nothing, and an unknown key is ignored. `target`: the
 * instance's endpoint, or a unix socket file.
 */
export function sendCancelRequest(target: InstanceEndpoint | string, pid: number, secret: number): void {
  const connected =
    typeof target === "string"
      ? new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(target);
          s.once("connect", () => resolve(s));
          s.once("error", reject);
        })
      : connectBackend(target);
  connected.then(
    (s) => {
      s.on("error", () => undefined);
      s.end(serialize.cancel(pid, secret));
    },
    () => undefined,
  );
}
