import net, { type Socket } from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { Catalog, DatabaseRow } from "../catalog/catalog.js";
import { DATABASE_ID_PATTERN, DATABASE_ID_SHAPE } from "../ids.js";
import type { Logger } from "../logger.js";
import { backendSocketPath } from "../runtime/backend-socket.js";
import type { Instances, Lease } from "../runtime/instances.js";
import { authenticate } from "./authenticate.js";
import { BackendRefused, CancelKeys, connectBackend, type BackendSession } from "./backend.js";
import { forwardNatively, type NativeSession } from "./forwarder.js";
import { AlreadyTold, startTls, type ClientChannel } from "./handshake.js";
import { ClientError, errorResponse, MessageReader, negotiateProtocolVersion, noticeResponse, parseStartupPacket, ProtocolError } from "./messages.js";
import { decoyVerifier, parseVerifier, type ScramVerifier } from "./scram.js";
import { databaseUrl } from "./url.js";

export interface WireProxyOptions {
  readonly listen: string;
  readonly port: number;
  readonly domain: string;
  readonly tls: { readonly key: string; readonly cert: string };
  readonly catalog: Catalog;
  readonly instances: Instances;
  /** Server connections allowed per instance through the proxy. */
  readonly maxConnectionsPerInstance: number;
  /** Secret for decoy SCRAM salts (unknown databases look like wrong passwords). */
  readonly secret: Buffer;
  readonly log: Logger;
  readonly startupTimeoutMs?: number;
  /** How long an authenticated client is held while its suspended database wakes (then 57P03). */
  readonly wakeTimeoutMs?: number;
  /** A database's connections limit and why it is read-only (databases/service.ts); absent: no limits. */
  readonly limits?: {
    connections(row: DatabaseRow): number | undefined;
    readOnly(row: DatabaseRow): { message: string } | undefined;
  };
}

/** Routing without TLS: the user name carries the instance, `<role>.db-<hex>` (as Supabase's pooler does). */
const USER_WITH_ID = new RegExp(`^(.+)\\.(${DATABASE_ID_SHAPE})$`);
/** First byte of a TLS handshake record: a direct-TLS client (Postgres 17+ `sslnegotiation=direct`). */
const TLS_HANDSHAKE = 0x16;

/** Who the client is, once the start-up packet is read: the role it logs in as and the instance it is routed to. */
interface Admission {
  readonly user: string;
  readonly role: string;
  readonly id: string;
}

/**
 * The Postgres wire endpoint: one port for every instance (and, through
 * websocket.ts, the same sessions over a WebSocket on ccpd's HTTP port). A
 * session goes through named stages, one module each:
 *
 *   handshake (handshake.ts: TLS by SSLRequest or direct, the start-up packet)
 *   → authenticate (authenticate.ts: SCRAM, SCRAM-PLUS, or cleartext on a WebSocket)
 *   → connect (backend.ts: a dedicated server connection over the instance's unix socket)
 *   → hand-off (forwarder.ts natively for plain TCP, Node streams otherwise)
 *
 * After start-up bytes go through untouched in both directions (session
 * pooling: prepared statements, LISTEN, temp tables behave as on a direct
 * connection).
 *
 * Hand-written start-up rather than pg-gateway: its stable release has no
 * SCRAM-SHA-256 and routes every message through a callback, which the hot path
 * must not pay for; after start-up this proxy only pipes sockets.
 */
export class WireProxy {
  readonly #o: WireProxyOptions;
  readonly #server: net.Server;
  readonly #secure: tls.SecureContext;
  readonly #connections = new Map<string, number>();
  readonly #cancelKeys = new CancelKeys();
  /** Every open client stream, with the instance it is routed to once known. */
  readonly #clients = new Map<Duplex, string | undefined>();
  /** Sessions carried by the native forwarder, by instance id. */
  readonly #native = new Map<string, Set<NativeSession>>();
  /** The configured port, then the one bound (the kernel's pick for 0). */
  #port: number;

  constructor(options: WireProxyOptions) {
    this.#o = Object.freeze({ ...options });
    this.#port = options.port;
    this.#secure = tls.createSecureContext({ key: options.tls.key, cert: options.tls.cert });
    this.#server = net.createServer((socket) => {
      socket.setNoDelay(true);
      void this.#accept({ stream: socket, transport: "tcp", servername: "" }, socket);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.#o.port, this.#o.listen, () => resolve());
    });
    const address = this.#server.address();
    if (typeof address === "object" && address) this.#port = address.port;
    return this.#port;
  }

  /** The DATABASE_URL of a database's role through this endpoint (url.ts). */
  databaseUrl(o: { id: string; role: string; password: string; database: string }): string {
    return databaseUrl({ ...o, domain: this.#o.domain, listen: this.#o.listen, wirePort: this.#port });
  }

  /** Open sessions of every instance (metrics, tests). */
  sessionCounts(): ReadonlyMap<string, number> {
    return this.#connections;
  }

  /**
   * A session carried by a WebSocket (websocket.ts): the Postgres protocol in
   * binary frames, as Neon's proxy serves it. `servername` is the host the
   * client asked for, which routes like TLS SNI does on the wire port.
   */
  acceptWebSocket(stream: Duplex, servername: string): void {
    void this.#accept({ stream, transport: "websocket", servername }, undefined);
  }

  /** Close every session of an instance (destroy, restore). */
  disconnect(id: string): void {
    for (const [stream, instance] of this.#clients) if (instance === id) stream.destroy();
    for (const n of this.#native.get(id) ?? []) n.close();
  }

  async close(): Promise<void> {
    for (const stream of this.#clients.keys()) stream.destroy();
    for (const sessions of this.#native.values()) for (const n of sessions) n.close();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #track(stream: Duplex, id?: string): void {
    if (!this.#clients.has(stream)) stream.once("close", () => this.#clients.delete(stream));
    this.#clients.set(stream, id);
  }

  /** The handshake stage. `raw` is the TCP socket of a wire-port client (TLS may be started on it); undefined for a WebSocket. */
  async #accept(first: ClientChannel, raw: Socket | undefined): Promise<void> {
    let channel = first;
    channel.stream.on("error", () => undefined);
    this.#track(channel.stream);
    const timer = setTimeout(() => channel.stream.destroy(), this.#o.startupTimeoutMs ?? 10_000);
    let reader = new MessageReader(channel.stream);
    try {
      if (raw && (await reader.peekByte()) === TLS_HANDSHAKE) {
        ({ channel, reader } = await startTls(raw, reader.detach(), this.#secure, true));
        this.#track(channel.stream);
      }
      for (;;) {
        const packet = parseStartupPacket(await reader.readStartup());
        if (packet.kind === "ssl") {
          // A WebSocket is encrypted by wss:// (Neon's driver asks only with forceDisablePgSSL off): decline, as Neon does.
          if (channel.transport === "websocket") {
            channel.stream.write("N");
            continue;
          }
          if (!raw || channel.transport !== "tcp") throw new ProtocolError("SSLRequest inside TLS");
          // Bytes sent before the server's answer could be injected by anyone on the path (CVE-2021-23214): refuse, as Postgres does.
          if (reader.detach().length > 0) throw new ProtocolError("received unencrypted data after SSL request");
          raw.write("S");
          ({ channel, reader } = await startTls(raw, Buffer.alloc(0), this.#secure, false));
          this.#track(channel.stream);
          continue;
        }
        if (packet.kind === "gssenc") {
          channel.stream.write("N");
          continue;
        }
        if (packet.kind === "cancel") {
          clearTimeout(timer);
          this.#cancelKeys.cancel(packet.pid, packet.secret);
          channel.stream.end();
          return;
        }
        await this.#session(channel, reader, packet.params, packet.minor, timer);
        return;
      }
    } catch (err) {
      clearTimeout(timer);
      this.#refuse(channel, err as Error);
    }
  }

  #refuse(channel: ClientChannel, err: Error): void {
    if (err instanceof AlreadyTold) return;
    if (err instanceof ClientError) {
      channel.stream.end(errorResponse(err.fields));
    } else if (err instanceof ProtocolError && err.reply) {
      channel.stream.end(errorResponse({ severity: "FATAL", code: "08P01", message: `invalid start-up: ${err.message}` }));
    } else if (err instanceof ProtocolError) {
      // As Postgres: logged, and the connection closed without a reply (the client may not even speak the protocol).
      if (err.message.startsWith("invalid start-up packet length")) this.#o.log.info(`wire: ${err.message}; closed the connection`);
      channel.stream.destroy();
    } else {
      this.#o.log.warn(`wire: ${err.message}`);
      channel.stream.destroy();
    }
  }

  /** Checks on the start-up packet, and routing: which instance and role. */
  #admit(channel: ClientChannel, params: Map<string, string>, minor: number): Admission {
    const user = params.get("user") ?? "";
    if (!user) throw new ClientError({ severity: "FATAL", code: "28000", message: "no user name in the start-up packet" });
    const replication = params.get("replication");
    if (replication && !/^(false|off|no|0)$/i.test(replication)) {
      throw new ClientError({ severity: "FATAL", code: "28000", message: "replication connections are not supported by the ccp wire endpoint" });
    }
    const unsupported = [...params.keys()].filter((k) => k.startsWith("_pq_."));
    if (minor > 0 || unsupported.length > 0) channel.stream.write(negotiateProtocolVersion(0, unsupported));

    const host = channel.servername;
    const fromHost = host.endsWith(`.${this.#o.domain}`) ? host.slice(0, -this.#o.domain.length - 1) : "";
    const m = USER_WITH_ID.exec(user);
    const role = m ? (m[1] as string) : user;
    const id = DATABASE_ID_PATTERN.test(fromHost) ? fromHost : m?.[2];
    if (!id) {
      throw new ClientError({
        severity: "FATAL",
        code: "28000",
        message: "no database id in the connection",
        hint: `Connect as user "<role>.db-<id>" (the DATABASE_URL ccp prints does), or over TLS to host db-<id>.${this.#o.domain}.`,
      });
    }
    return { user, role, id };
  }

  async #verifier(id: string, role: string, user: string): Promise<{ verifier: ScramVerifier; known: boolean }> {
    const cred = await this.#o.catalog.credentials.scramVerifier(id, role);
    if (cred) return { verifier: parseVerifier(cred), known: true };
    return { verifier: decoyVerifier(this.#o.secret, `${id}/${user}`), known: false };
  }

  /** A connection slot on the instance, or a ClientError; the returned function gives it back (idempotent). */
  #reserve(id: string, max = this.#o.maxConnectionsPerInstance): () => void {
    const open = this.#connections.get(id) ?? 0;
    if (open >= max) {
      throw new ClientError({
        severity: "FATAL",
        code: "53300",
        message: `too many connections to database ${id}: the limit is ${max}`,
        hint: "Close idle connections, or use a client-side pool with fewer connections.",
      });
    }
    this.#connections.set(id, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#connections.set(id, (this.#connections.get(id) ?? 1) - 1);
    };
  }

  /** A lease on the instance, waking it if it sleeps; past the wake deadline a retryable 57P03 that says so. */
  async #lease(id: string, timer: NodeJS.Timeout): Promise<Lease> {
    const startupMs = this.#o.startupTimeoutMs ?? 10_000;
    timer.refresh();
    try {
      return await this.#o.instances.use(id, { timeoutMs: Math.min(this.#o.wakeTimeoutMs ?? startupMs, startupMs - 500) });
    } catch (err) {
      const waking = (err as { details?: { reason?: string } }).details?.reason === "waking";
      throw new ClientError({
        severity: "FATAL",
        code: "57P03",
        message: waking ? `the database is waking up (${id}) and did not accept connections in time` : `database ${id} is not ready`,
        hint: waking ? "Retry in a moment: it is still starting." : "Retry shortly.",
      });
    } finally {
      timer.refresh();
    }
  }

  async #session(channel: ClientChannel, reader: MessageReader, params: Map<string, string>, minor: number, timer: NodeJS.Timeout): Promise<void> {
    const { user, role, id } = this.#admit(channel, params, minor);
    const { verifier, known } = await this.#verifier(id, role, user);
    const authenticated = await authenticate(channel, reader, verifier, user);
    if (!known) throw new ClientError({ severity: "FATAL", code: "28P01", message: `password authentication failed for user "${user}"` });

    const row = await this.#o.catalog.databases.findById(id);
    if (!row || (row.status !== "ready" && row.status !== "suspended")) {
      throw new ClientError({ severity: "FATAL", code: "57P03", message: `database ${id} is not ready`, hint: "Retry shortly." });
    }
    // Authenticated: the client is held while a suspended database wakes; the lease keeps it awake for the session.
    const lease = await this.#lease(id, timer);
    let reserved: () => void;
    try {
      reserved = this.#reserve(id, Math.min(this.#o.maxConnectionsPerInstance, this.#o.limits?.connections(row) ?? Infinity));
    } catch (err) {
      lease.release();
      throw err;
    }
    const release = () => {
      reserved();
      lease.release();
    };
    let database = params.get("database") || row.database_name;
    if (database === user) database = row.database_name; // libpq defaults the database to the user name
    const forwarded: [string, string][] = [
      ["user", role],
      ["database", database],
      ...[...params].filter(([k]) => k !== "user" && k !== "database" && k !== "replication" && !k.startsWith("_pq_.")),
    ];
    let backend: BackendSession;
    try {
      backend = await connectBackend({ id, socketPath: backendSocketPath(lease.endpoint), params: forwarded, cancelKeys: this.#cancelKeys });
    } catch (err) {
      release();
      if (!(err instanceof BackendRefused)) throw err;
      // The client is authenticated, so the instance's own error (e.g. database "x" does not exist) is passed on as is.
      clearTimeout(timer);
      channel.stream.end(Buffer.concat([...authenticated, err.errorMessage]));
      return;
    }
    clearTimeout(timer);
    // Over its storage quota: the session starts read-only; a notice before ReadyForQuery says why and what to do.
    const readOnly = row.read_only_since ? this.#o.limits?.readOnly(row) : undefined;
    const toClient = readOnly
      ? [...backend.toClient.slice(0, -1), noticeResponse({ code: "53100", message: readOnly.message }), ...backend.toClient.slice(-1)]
      : backend.toClient;
    this.#handOff(channel, reader, id, backend, Buffer.concat([...authenticated, ...toClient, backend.rest]), release);
  }

  /** The hand-off stage: from here on bytes go through untouched. */
  #handOff(channel: ClientChannel, reader: MessageReader, id: string, backend: BackendSession, toClient: Buffer, release: () => void): void {
    const fromClient = reader.detach();
    const done = () => {
      release();
      backend.forgetCancelKey();
    };
    // Same tick as the detaches: Node must not read another byte from either socket first.
    if (channel.transport === "tcp") {
      let session: NativeSession | undefined;
      try {
        session = forwardNatively(channel.stream as Socket, backend.socket, toClient, fromClient, () => {
          done();
          if (session) this.#native.get(id)?.delete(session);
        });
      } catch (err) {
        // e.g. out of file descriptors for the forwarder's copies: the sockets are untouched, pipe them here.
        this.#o.log.warn(`wire: native forwarding of a session of ${id} failed (${(err as Error).message}); forwarding it in JavaScript`);
      }
      if (session) {
        let sessions = this.#native.get(id);
        if (!sessions) this.#native.set(id, (sessions = new Set()));
        sessions.add(session);
        return;
      }
    }
    const client = channel.stream;
    this.#track(client, id);
    client.write(toClient);
    if (fromClient.length > 0) backend.socket.write(fromClient);
    const end = () => {
      done();
      client.destroy();
      backend.socket.destroy();
    };
    client.once("close", end);
    if (channel.transport === "websocket") {
      // The pipe ends the WebSocket with a close frame when the backend ends; destroying it now would drop that frame.
      backend.socket.once("close", () => {
        done();
        client.end();
      });
    } else {
      backend.socket.once("close", end);
    }
    client.pipe(backend.socket);
    backend.socket.pipe(client);
  }
}
