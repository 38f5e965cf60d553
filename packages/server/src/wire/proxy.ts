import { randomBytes, randomInt } from "node:crypto";
import net, { type Socket } from "node:net";
import tls from "node:tls";
import { serialize } from "pg-protocol";
import type { Catalog } from "../catalog/catalog.js";
import type { Logger } from "../logger.js";
import { backendSocketPath, sendCancelRequest } from "../runtime/backend-socket.js";
import type { RuntimeDriver } from "../runtime/driver.js";
import {
  authenticationOk,
  authenticationSasl,
  authenticationSaslContinue,
  authenticationSaslFinal,
  backendKeyData,
  errorResponse,
  message,
  MessageReader,
  negotiateProtocolVersion,
  parseStartupPacket,
  ProtocolError,
  type ErrorFields,
} from "./messages.js";
import { forwardNatively, type NativeSession } from "./forwarder.js";
import { decoyVerifier, parseVerifier, ScramError, ScramExchange, type ScramVerifier } from "./scram.js";

export interface WireProxyOptions {
  readonly listen: string;
  readonly port: number;
  readonly domain: string;
  readonly tls: { readonly key: string; readonly cert: string };
  readonly catalog: Catalog;
  readonly driver: RuntimeDriver;
  /** Server connections allowed per instance through the proxy. */
  readonly maxConnectionsPerInstance: number;
  /** Secret for decoy SCRAM salts (unknown databases look like wrong passwords). */
  readonly secret: Buffer;
  readonly log: Logger;
  readonly startupTimeoutMs?: number;
}

const ID = /^db-[0-9a-f]{12}$/;
/** Routing without TLS: the user name carries the instance, `<role>.db-<hex>` (as Supabase's pooler does). */
const USER_WITH_ID = /^(.+)\.(db-[0-9a-f]{12})$/;

/** The client was already told (an error from the instance was passed on): just close. */
class AlreadyReported extends Error {}

class ClientError extends Error {
  constructor(readonly fields: ErrorFields) {
    super(fields.message);
  }
}

interface CancelTarget {
  readonly socketPath: string;
  readonly pid: number;
  readonly secret: Buffer;
}

/**
 * The Postgres wire endpoint: one port for every instance. It does the start-up
 * and SCRAM authentication itself (against the verifier in the catalog), opens a
 * dedicated server connection for the session over the instance's unix socket,
 * then forwards bytes untouched in both directions (session pooling: prepared
 * statements, LISTEN, temp tables behave as on a direct connection).
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
  readonly #cancelKeys = new Map<string, CancelTarget>();
  readonly #sockets = new Set<Socket>();
  /** Sessions carried by the native forwarder, by instance id. */
  readonly #native = new Map<string, Set<NativeSession>>();

  constructor(options: WireProxyOptions) {
    this.#o = Object.freeze({ ...options });
    this.#secure = tls.createSecureContext({ key: options.tls.key, cert: options.tls.cert });
    this.#server = net.createServer((socket) => void this.#handle(socket));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.#o.port, this.#o.listen, () => resolve());
    });
    const address = this.#server.address();
    return typeof address === "object" && address ? address.port : this.#o.port;
  }

  /** Open sessions of every instance (metrics). */
  sessionCounts(): ReadonlyMap<string, number> {
    return this.#connections;
  }

  /** Open sessions per instance (for status and tests). */
  connections(id: string): number {
    return this.#connections.get(id) ?? 0;
  }

  /** Close every session of an instance (destroy, restore). */
  disconnect(id: string): void {
    for (const s of this.#sockets) if ((s as Socket & { ccpInstance?: string }).ccpInstance === id) s.destroy();
    for (const n of this.#native.get(id) ?? []) n.close();
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    for (const sessions of this.#native.values()) for (const n of sessions) n.close();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(raw: Socket): Promise<void> {
    raw.setNoDelay(true);
    raw.on("error", () => undefined);
    this.#sockets.add(raw);
    raw.once("close", () => this.#sockets.delete(raw));
    const timer = setTimeout(() => raw.destroy(), this.#o.startupTimeoutMs ?? 10_000);
    let client: Socket = raw;
    let reader = new MessageReader(raw);
    try {
      // Direct TLS (Postgres 17+ sslnegotiation=direct): the first byte is a TLS handshake record.
      if ((await reader.peekByte()) === 0x16) {
        ({ client, reader } = await this.#upgrade(raw, reader));
      }
      for (;;) {
        const packet = parseStartupPacket(await reader.readStartup());
        if (packet.kind === "ssl") {
          if (client !== raw) throw new ProtocolError("SSLRequest inside TLS");
          const rest = reader.detach();
          if (rest.length > 0) throw new ProtocolError("data after SSLRequest");
          raw.write("S");
          ({ client, reader } = await this.#upgrade(raw, undefined));
          continue;
        }
        if (packet.kind === "gssenc") {
          client.write("N");
          continue;
        }
        if (packet.kind === "cancel") {
          this.#cancel(packet.pid, packet.secret);
          client.end();
          return;
        }
        await this.#session(client, reader, packet.params, packet.minor, timer);
        return;
      }
    } catch (err) {
      clearTimeout(timer);
      if (err instanceof ClientError) {
        client.end(errorResponse(err.fields));
      } else if (err instanceof ProtocolError) {
        client.end(errorResponse({ severity: "FATAL", code: "08P01", message: `invalid start-up: ${err.message}` }));
      } else {
        this.#o.log.warn(`wire: ${(err as Error).message}`);
        client.destroy();
      }
    }
  }

  async #upgrade(raw: Socket, reader: MessageReader | undefined): Promise<{ client: Socket; reader: MessageReader }> {
    const rest = reader?.detach();
    if (rest && rest.length > 0) raw.unshift(rest);
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.#secure, ALPNProtocols: ["postgresql"] });
    secure.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => {
      secure.once("secure", resolve);
      secure.once("error", reject);
      secure.once("close", () => reject(new ProtocolError("closed during TLS handshake")));
    });
    return { client: secure, reader: new MessageReader(secure) };
  }

  #route(client: Socket, user: string): { id: string | undefined; role: string } {
    const sni = client instanceof tls.TLSSocket && typeof client.servername === "string" ? client.servername.toLowerCase() : "";
    const fromSni = sni.endsWith(`.${this.#o.domain}`) ? sni.slice(0, -this.#o.domain.length - 1) : "";
    const m = USER_WITH_ID.exec(user);
    const fromUser = m?.[2];
    const role = m ? (m[1] as string) : user;
    const id = ID.test(fromSni) ? fromSni : fromUser;
    return { id, role };
  }

  async #verifier(id: string | undefined, role: string, user: string): Promise<{ verifier: ScramVerifier; known: boolean }> {
    if (id) {
      const cred = await this.#o.catalog.findCredential(id, role);
      if (cred) return { verifier: parseVerifier(cred), known: true };
    }
    return { verifier: decoyVerifier(this.#o.secret, `${id ?? ""}/${user}`), known: false };
  }

  async #authenticate(client: Socket, reader: MessageReader, verifier: ScramVerifier, user: string): Promise<string> {
    const failed = new ClientError({ severity: "FATAL", code: "28P01", message: `password authentication failed for user "${user}"` });
    client.write(authenticationSasl(["SCRAM-SHA-256"]));
    const initial = await reader.readMessage();
    if (initial.type !== "p") throw new ProtocolError(`expected SASLInitialResponse, got "${initial.type}"`);
    const nul = initial.body.indexOf(0);
    const mechanism = initial.body.subarray(0, nul).toString("utf8");
    if (mechanism !== "SCRAM-SHA-256") {
      throw new ClientError({ severity: "FATAL", code: "28000", message: `SASL mechanism ${mechanism} is not supported; use SCRAM-SHA-256` });
    }
    const length = initial.body.readInt32BE(nul + 1);
    const exchange = new ScramExchange(verifier);
    try {
      client.write(authenticationSaslContinue(exchange.first(initial.body.subarray(nul + 5, nul + 5 + length).toString("utf8"))));
      const response = await reader.readMessage();
      if (response.type !== "p") throw new ProtocolError(`expected SASLResponse, got "${response.type}"`);
      return exchange.final(response.body.toString("utf8"));
    } catch (err) {
      if (err instanceof ScramError) throw failed;
      throw err;
    }
  }

  async #session(client: Socket, reader: MessageReader, params: Map<string, string>, minor: number, timer: NodeJS.Timeout): Promise<void> {
    const user = params.get("user") ?? "";
    if (!user) throw new ClientError({ severity: "FATAL", code: "28000", message: "no user name in the start-up packet" });
    const replication = params.get("replication");
    if (replication && !/^(false|off|no|0)$/i.test(replication)) {
      throw new ClientError({ severity: "FATAL", code: "28000", message: "replication connections are not supported by the ccp wire endpoint" });
    }
    const unsupported = [...params.keys()].filter((k) => k.startsWith("_pq_."));
    if (minor > 0 || unsupported.length > 0) client.write(negotiateProtocolVersion(0, unsupported));

    const { id, role } = this.#route(client, user);
    if (!id) {
      throw new ClientError({
        severity: "FATAL",
        code: "28000",
        message: "no database id in the connection",
        hint: `Connect as user "<role>.db-<id>" (the DATABASE_URL ccp prints does), or over TLS to host db-<id>.${this.#o.domain}.`,
      });
    }
    const { verifier, known } = await this.#verifier(id, role, user);
    const serverFinal = await this.#authenticate(client, reader, verifier, user);
    if (!known) throw new ClientError({ severity: "FATAL", code: "28P01", message: `password authentication failed for user "${user}"` });

    const row = await this.#o.catalog.findDatabaseById(id);
    if (!row || row.status !== "ready" || this.#o.driver.state(id) !== "running") {
      throw new ClientError({ severity: "FATAL", code: "57P03", message: `database ${id} is not ready`, hint: "Retry shortly." });
    }
    const open = this.#connections.get(id) ?? 0;
    if (open >= this.#o.maxConnectionsPerInstance) {
      throw new ClientError({
        severity: "FATAL",
        code: "53300",
        message: `too many connections to database ${id}: the limit is ${this.#o.maxConnectionsPerInstance}`,
        hint: "Close idle connections, or use a client-side pool with fewer connections.",
      });
    }
    this.#connections.set(id, open + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#connections.set(id, (this.#connections.get(id) ?? 1) - 1);
    };

    let database = params.get("database") || row.database_name;
    if (database === user) database = row.database_name; // libpq defaults the database to the user name
    const endpoint = this.#o.driver.endpoint(id);
    const socketPath = backendSocketPath(endpoint);
    let backend: Socket;
    try {
      backend = await connectUnix(socketPath);
    } catch {
      release();
      throw new ClientError({ severity: "FATAL", code: "57P03", message: `database ${id} is not accepting connections`, hint: "Retry shortly." });
    }
    backend.on("error", () => undefined);
    const forwarded: Record<string, string> = { user: role, database };
    for (const [k, v] of params) if (k !== "user" && k !== "database" && k !== "replication" && !k.startsWith("_pq_.")) forwarded[k] = v;
    backend.write(serialize.startup(forwarded));

    const backendReader = new MessageReader(backend);
    const toClient: Buffer[] = [authenticationSaslFinal(serverFinal), authenticationOk()];
    let cancelKey: string | undefined;
    try {
      for (;;) {
        const { type, body } = await backendReader.readMessage(1 << 20);
        if (type === "R") {
          if (body.readInt32BE(0) !== 0) throw new Error(`instance ${id} asked for authentication type ${body.readInt32BE(0)}`);
        } else if (type === "E") {
          // e.g. database "x" does not exist: the client is authenticated, so pass it on as is.
          client.write(Buffer.concat([...toClient, message(type, body)]));
          throw new AlreadyReported();
        } else if (type === "K") {
          const pid = randomInt(1, 0x7fffffff);
          const secret = randomBytes(4);
          cancelKey = `${pid}:${secret.toString("hex")}`;
          this.#cancelKeys.set(cancelKey, { socketPath, pid: body.readInt32BE(0), secret: Buffer.from(body.subarray(4)) });
          toClient.push(backendKeyData(pid, secret.readInt32BE(0)));
        } else {
          toClient.push(message(type, body));
          if (type === "Z") break;
        }
      }
    } catch (err) {
      release();
      if (cancelKey) this.#cancelKeys.delete(cancelKey);
      backend.destroy();
      if (err instanceof AlreadyReported) {
        client.end();
        return;
      }
      throw err;
    }
    clearTimeout(timer);
    const fromClient = reader.detach();
    const fromBackend = backendReader.detach();
    const toClientNow = Buffer.concat(fromBackend.length > 0 ? [...toClient, fromBackend] : toClient);
    const forgetCancelKey = () => {
      if (cancelKey) this.#cancelKeys.delete(cancelKey);
    };
    // Same tick as the detaches: Node must not read another byte from either socket first.
    let session: NativeSession | undefined;
    try {
      session = forwardNatively(client, backend, toClientNow, fromClient, () => {
        release();
        forgetCancelKey();
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
    (client as Socket & { ccpInstance?: string }).ccpInstance = id;
    client.write(toClientNow);
    if (fromClient.length > 0) backend.write(fromClient);
    const end = () => {
      release();
      forgetCancelKey();
      client.destroy();
      backend.destroy();
    };
    client.once("close", end);
    backend.once("close", end);
    client.pipe(backend);
    backend.pipe(client);
  }

  /** Forward a cancel request to exactly the server session it names; unknown keys are ignored, as Postgres does. */
  #cancel(pid: number, secret: Buffer): void {
    const target = this.#cancelKeys.get(`${pid}:${secret.toString("hex")}`);
    if (!target) return;
    // Backends are started on protocol 3.0, so their secret is always 4 bytes.
    sendCancelRequest(target.socketPath, target.pid, target.secret.readInt32BE(0));
  }
}

function connectUnix(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}
