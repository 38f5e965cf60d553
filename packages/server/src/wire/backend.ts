import { randomBytes } from "node:crypto";
import net, { type Socket } from "node:net";
import { sendCancelRequest } from "../runtime/backend-socket.js";
import { backendKeyData, ClientError, message, MessageReader, startupMessage } from "./messages.js";

/** A backend refused the session after authentication (e.g. database "x" does not exist): its ErrorResponse, to pass on as is. */
export class BackendRefused extends Error {
  constructor(readonly errorMessage: Buffer) {
    super("backend refused the session");
  }
}

export interface BackendSession {
  readonly socket: Socket;
  /** Backend messages up to and including the first ReadyForQuery, to send to the client (BackendKeyData with its remapped key). */
  readonly toClient: Buffer[];
  /** Bytes the backend sent past ReadyForQuery (none in practice; kept so nothing is lost). */
  readonly rest: Buffer;
  /** Forget the session's cancel key (when it ends). */
  forgetCancelKey(): void;
}

/**
 * The connect stage: a server connection over the instance's unix socket,
 * started with the client's own start-up parameters (in the client's order:
 * `client_encoding`, `DateStyle`, `application_name`, `options`… reach Postgres
 * as sent), read up to ReadyForQuery. The backend trusts the unix socket, so
 * it asks for no password.
 */
export async function connectBackend(o: { id: string; socketPath: string; params: Iterable<readonly [string, string]>; cancelKeys: CancelKeys }): Promise<BackendSession> {
  let socket: Socket;
  try {
    socket = await connectUnix(o.socketPath);
  } catch {
    throw new ClientError({ severity: "FATAL", code: "57P03", message: `database ${o.id} is not accepting connections`, hint: "Retry shortly." });
  }
  socket.on("error", () => undefined);
  socket.write(startupMessage(o.params));
  const reader = new MessageReader(socket);
  const toClient: Buffer[] = [];
  let forget = () => undefined as void;
  try {
    for (;;) {
      const { type, body } = await reader.readMessage(1 << 20);
      if (type === "R") {
        if (body.readInt32BE(0) !== 0) throw new Error(`instance ${o.id} asked for authentication type ${body.readInt32BE(0)}`);
      } else if (type === "E") {
        throw new BackendRefused(message(type, body));
      } else if (type === "K") {
        const pid = body.readInt32BE(0);
        const key = o.cancelKeys.issue(o.socketPath, pid, Buffer.from(body.subarray(4)));
        forget = key.forget;
        toClient.push(backendKeyData(pid, key.secret));
      } else {
        toClient.push(message(type, body));
        if (type === "Z") break;
      }
    }
  } catch (err) {
    forget();
    socket.destroy();
    throw err;
  }
  return { socket, toClient, rest: reader.detach(), forgetCancelKey: forget };
}

function connectUnix(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

interface CancelTarget {
  readonly socketPath: string;
  readonly secret: Buffer;
}

/**
 * Cancel keys of the wire endpoint's sessions. Clients get the backend's real
 * pid (so `pg_backend_pid()`, `pg_terminate_backend(<pid>)` and
 * `pg_stat_activity` agree with what the driver holds) and a secret of ccpd's
 * own: only its holder can cancel, and the instance's secret never leaves ccpd.
 * Pids repeat across instances (each has its own postmaster), so a cancel is
 * routed on pid and secret together.
 */
export class CancelKeys {
  readonly #targets = new Map<string, CancelTarget>();

  /** The secret (int32) the client gets for the backend `pid` with secret `secret`. */
  issue(socketPath: string, pid: number, secret: Buffer): { secret: number; forget: () => void } {
    for (;;) {
      const mine = randomBytes(4);
      const key = `${pid}:${mine.toString("hex")}`;
      if (this.#targets.has(key)) continue;
      this.#targets.set(key, { socketPath, secret });
      return { secret: mine.readInt32BE(0), forget: () => void this.#targets.delete(key) };
    }
  }

  /** Forward a cancel request to exactly the server session it names; unknown keys are ignored, as Postgres does. */
  cancel(pid: number, secret: Buffer): void {
    const target = this.#targets.get(`${pid}:${secret.toString("hex")}`);
    // Backends are started on protocol 3.0, so their secret is always 4 bytes.
    if (target) sendCancelRequest(target.socketPath, pid, target.secret.readInt32BE(0));
  }
}
