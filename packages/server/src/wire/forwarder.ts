import { createRequire } from "node:module";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";

/**
 * How a wire session's bytes move once start-up is done:
 * - "native": native/forwarder.c, one thread in ccpd that owns both sockets
 *   and copies between them without waking the JavaScript thread, on io_uring
 *   (one system call per message) or, where the kernel or a container's
 *   seccomp profile refuses io_uring, on epoll (three);
 * - "js": Node streams, `client.pipe(backend)` both ways (TLS sessions always,
 *   since only Node holds their keys, and WebSocket sessions, whose frames only
 *   Node parses; every session when the addon is missing).
 */
export type ForwarderKind = "native" | "js";

export type NativeEngine = "io_uring" | "epoll";

interface Addon {
  init(onClose: (id: number) => void, engine: "auto" | "epoll"): NativeEngine;
  forward(clientFd: number, backendFd: number, toClient: Buffer, toBackend: Buffer): number;
  shutdown(id: number): boolean;
  active(): number;
}

/** A session handed to the native forwarder. */
export interface NativeSession {
  /** End the session: both sockets see EOF; `onClose` follows. */
  close(): void;
}

let loaded: { addon: Addon; engine: NativeEngine; closers: Map<number, () => void> } | null | undefined;
let loadError: string | undefined;

function addon(): typeof loaded {
  if (loaded !== undefined) return loaded;
  loaded = null;
  // CCP_WIRE_FORWARDER: unset (native, io_uring when allowed), "epoll" (native, never io_uring), "js".
  const wanted = process.env["CCP_WIRE_FORWARDER"];
  if (wanted === "js") {
    loadError = "CCP_WIRE_FORWARDER=js";
    return loaded;
  }
  try {
    // dist/wire/forwarder.js → native/build/Release (built by `npm run build`)
    const a = createRequire(import.meta.url)("../../native/build/Release/ccp_forwarder.node") as Addon;
    const closers = new Map<number, () => void>();
    const engine = a.init(
      (id) => {
        const done = closers.get(id);
        closers.delete(id);
        done?.();
      },
      wanted === "epoll" ? "epoll" : "auto",
    );
    loaded = { addon: a, engine, closers };
  } catch (err) {
    loadError = (err as Error).message.split("\n")[0];
  }
  return loaded;
}

/** Which forwarder plain-TCP sessions get, and why not native when they don't. */
export function forwarderKind(): { kind: ForwarderKind; engine?: NativeEngine; reason?: string } {
  const a = addon();
  return a ? { kind: "native", engine: a.engine } : { kind: "js", ...(loadError ? { reason: loadError } : {}) };
}

/** The file descriptor under a plain net.Socket (Node keeps it on the private libuv handle). */
function fdOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

/**
 * Hand `client` and `backend` to the native forwarder, with `toClient` and
 * `toBackend` queued ahead of anything it forwards. Must run in the same tick as
 * the start-up reader's detach, so Node reads nothing more from either socket;
 * it dups both descriptors and then destroys the Node sockets (their own fds
 * close, the connections stay open through the dups). Returns undefined, with
 * the sockets untouched, when the session cannot go native (no addon, TLS,
 * bytes still queued in Node): the caller then pipes in JavaScript.
 */
export function forwardNatively(client: Socket, backend: Socket, toClient: Buffer, toBackend: Buffer, onClose: () => void): NativeSession | undefined {
  const a = addon();
  if (!a || client instanceof TLSSocket) return undefined;
  const clientFd = fdOf(client);
  const backendFd = fdOf(backend);
  if (clientFd === undefined || backendFd === undefined) return undefined;
  // Bytes Node has read but nobody consumed, or has queued but not written, would be lost or reordered.
  if (client.readableLength > 0 || backend.readableLength > 0 || client.writableLength > 0 || backend.writableLength > 0) return undefined;
  const id = a.addon.forward(clientFd, backendFd, toClient, toBackend);
  a.closers.set(id, onClose);
  client.destroy();
  backend.destroy();
  return { close: () => void a.addon.shutdown(id) };
}

/** Sessions the native forwarder is carrying (for tests and status). */
export function nativeSessions(): number {
  return addon()?.addon.active() ?? 0;
}
