import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { createWebSocketStream, WebSocketServer } from "ws";
import { CcpError } from "../errors.js";
import { DATABASE_ID_SHAPE } from "../ids.js";
import type { WireProxy } from "./proxy.js";

/** Where Neon's driver opens its WebSocket by default (`neonConfig.wsProxy = host => host + "/v2"`). */
export const WEBSOCKET_PATH = "/v2";

const DB_HOST = new RegExp(`^${DATABASE_ID_SHAPE}\\.`);

/**
 * The Postgres protocol over a WebSocket on ccpd's HTTP port, as Neon's proxy
 * serves it (proxy/src/serverless/websocket.rs): each binary frame carries
 * protocol bytes, in both directions, and the session is the wire endpoint's
 * own (WireProxy.acceptWebSocket): same start-up, authentication, routing,
 * connection limit and cancel keys. This is the transport of
 * `@neondatabase/serverless`'s `Pool` and `Client`.
 *
 * The database is routed by the connection string's user `<role>.db-<id>`, as
 * on the wire port, or by the host the driver was given: the `Host` header
 * (`wss://db-<id>.<domain>/v2`, the driver's default) or the `address` query
 * parameter a string `wsProxy` appends (`…/v2?address=db-<id>.<domain>:5432`).
 */
export function serveWebSockets(server: Server, proxy: WireProxy, domain: string): () => void {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => undefined);
    const url = new URL(req.url ?? "/", "http://ccpd");
    if (url.pathname !== WEBSOCKET_PATH) {
      const e = new CcpError("not_found", `No WebSocket endpoint at ${url.pathname}.`, {
        hint: `The Postgres protocol over WebSocket is served at ${WEBSOCKET_PATH} (neonConfig.wsProxy = "<ccpd host:port>${WEBSOCKET_PATH}").`,
      });
      const body = JSON.stringify(e.toJSON());
      socket.end(`HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws);
      proxy.acceptWebSocket(stream, servername(req, url, domain));
    });
  };
  server.on("upgrade", onUpgrade);
  return () => {
    server.off("upgrade", onUpgrade);
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  };
}

/** The database host the client addressed, if any: Host header first, then `?address=host:port`. */
function servername(req: IncomingMessage, url: URL, domain: string): string {
  const candidates = [req.headers.host ?? "", url.searchParams.get("address") ?? ""];
  for (const c of candidates) {
    const host = c.toLowerCase().replace(/:\d+$/, "");
    if (DB_HOST.test(host) && host.endsWith(`.${domain}`)) return host;
  }
  return "";
}
