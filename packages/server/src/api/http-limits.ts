import type http from "node:http";
import type net from "node:net";

/** How long ccpd's HTTP server waits for a client, and how many slow ones it keeps. */
export interface HttpLimits {
  /** The request line and headers must arrive within this many ms. */
  readonly headersTimeoutMs: number;
  /** The whole request (headers and body) must arrive within this many ms; the answer may take longer. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this many ms. */
  readonly keepAliveTimeoutMs: number;
  /**
   * Connections that have not yet sent a complete request (new, mid-request, or
   * idle between keep-alive requests): past this many, the oldest is closed.
   */
  readonly maxPendingConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxPendingConnections: 1_000,
});

/**
 * Options for node:http's server. Node checks its header and request timeouts
 * only every `connectionsCheckingInterval` (30 s by default), so that is
 * shortened too: a stalled request is closed within about a second of its timeout.
 */
export function httpServerOptions(limits: HttpLimits): http.ServerOptions {
  return {
    headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(250, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
  };
}

/**
 * Bound the connections that have not sent a complete request. A set keeps
 * them in the order they became pending, so the one closed first is the one
 * that has waited longest: a flood of stalled sockets evicts its own oldest,
 * while a client that sends its request at once is never pending for long.
 */
export function limitPendingConnections(server: http.Server, max: number): { readonly pending: number } {
  const pending = new Set<net.Socket>();
  const markPending = (socket: net.Socket) => {
    if (socket.destroyed) return;
    pending.delete(socket);
    pending.add(socket);
    while (pending.size > max) {
      const oldest = pending.values().next().value as net.Socket;
      pending.delete(oldest);
      oldest.destroy();
    }
  };
  server.on("connection", (socket: net.Socket) => {
    markPending(socket);
    socket.once("close", () => pending.delete(socket));
  });
  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket;
    const received = () => pending.delete(socket);
    // `complete` is set by the parser when the last body byte arrives, whether
    // or not anyone has read it (a GET's body is never read).
    if (req.complete) received();
    else {
      req.once("end", received);
      setImmediate(() => req.complete && received());
    }
    // Back to waiting for the next request on a kept-alive connection.
    res.once("finish", () => markPending(socket));
  });
  return {
    get pending() {
      return pending.size;
    },
  };
}
