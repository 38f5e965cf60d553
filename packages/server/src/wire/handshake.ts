import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { errorResponse, MessageReader, ProtocolError } from "./messages.js";
import { tlsServerEndPoint } from "./scram.js";

/**
 * A client connection during start-up, whichever way it came in: plain TCP or
 * TLS on the wire port, or a WebSocket on ccpd's HTTP port (Neon's driver).
 * Everything after the handshake (authentication, routing, connecting the
 * backend, forwarding) is the same code for all three.
 */
export interface ClientChannel {
  readonly stream: Duplex;
  readonly transport: "tcp" | "tls" | "websocket";
  /** The host name the client asked for (TLS SNI; the WebSocket's Host or `address`), lower case; "" when none. */
  readonly servername: string;
  /** `tls-server-end-point` channel-binding data of a TLS session, when its certificate allows it. */
  readonly channelBinding?: Buffer;
}

/** The client was sent its error already (over TLS): the connection closes by itself. */
export class AlreadyTold extends Error {}

/** ALPN protocol name Postgres 17+ requires with direct TLS. */
export const ALPN_POSTGRESQL = "postgresql";

/**
 * A TLS session over `raw`. `head` holds bytes already read from `raw` (the
 * ClientHello of a direct-TLS client, read to tell it from a start-up packet):
 * the TLS socket then reads through a stream that replays them first. Putting
 * them back with `unshift` does not work: a TLSSocket over a net.Socket reads
 * from the native handle and never sees them.
 */
export async function startTls(raw: Socket, head: Buffer, context: tls.SecureContext, direct: boolean): Promise<{ channel: ClientChannel; reader: MessageReader }> {
  const under = head.length > 0 ? new ReplayingStream(raw, head) : raw;
  const secure = new tls.TLSSocket(under, { isServer: true, secureContext: context, ALPNProtocols: [ALPN_POSTGRESQL] });
  secure.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    secure.once("secure", resolve);
    secure.once("error", reject);
    secure.once("close", () => reject(new ProtocolError("closed during TLS handshake", false)));
  });
  const channelBinding = certificateBinding(secure);
  const channel: ClientChannel = {
    stream: secure,
    transport: "tls",
    servername: typeof secure.servername === "string" ? secure.servername.toLowerCase() : "",
    ...(channelBinding ? { channelBinding } : {}),
  };
  // Postgres 17+ refuses direct TLS without ALPN "postgresql" (it keeps other protocols' clients out).
  if (direct && secure.alpnProtocol !== ALPN_POSTGRESQL) {
    // Told over TLS, which is what the client speaks now; then closed.
    secure.end(
      errorResponse({
        severity: "FATAL",
        code: "08P01",
        message: "received direct SSL connection request without ALPN protocol negotiation extension",
        hint: `Direct TLS clients must offer the ALPN protocol "${ALPN_POSTGRESQL}".`,
      }),
    );
    throw new AlreadyTold("direct TLS without ALPN");
  }
  return { channel, reader: new MessageReader(secure) };
}

function certificateBinding(secure: tls.TLSSocket): Buffer | undefined {
  const cert = secure.getCertificate();
  const raw = cert && "raw" in cert ? cert.raw : undefined;
  return raw ? tlsServerEndPoint(raw) : undefined;
}

/** `socket`'s bytes, preceded by `head`. */
class ReplayingStream extends Duplex {
  readonly #socket: Socket;

  constructor(socket: Socket, head: Buffer) {
    super();
    this.#socket = socket;
    this.push(head);
    socket.on("data", (d: Buffer) => {
      if (!this.push(d)) socket.pause();
    });
    socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => this.destroy());
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.#socket.write(chunk, done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#socket.end(done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.#socket.destroy();
    done(err);
  }
}
