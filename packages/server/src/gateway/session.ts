import net from "node:net";
import { DatabaseError, parse, serialize } from "pg-protocol";
import { connectBackend, sendCancelRequest } from "../runtime/backend-socket.js";
import type { InstanceEndpoint } from "../runtime/driver.js";

/**
 * One gateway connection to an instance, speaking the protocol through
 * pg-protocol (framing and message parsing) but with its own request cycle.
 * Why not node-postgres' Client here: the gateway resets every connection after
 * every request, and with pg that reset is a second round trip (a second write,
 * a second backend wake-up, a second read) on the hot path. A Session writes the
 * request and the reset (DISCARD ALL) in one go; Postgres runs them back to back
 * and the request's answer comes back first. `npm run bench -- --only gateway`
 * measures the difference.
 */

/** A column as RowDescription describes it (node-postgres' names). */
export interface ColumnDescription {
  readonly name: string;
  readonly tableID: number;
  readonly columnID: number;
  readonly dataTypeID: number;
  readonly dataTypeSize: number;
  readonly dataTypeModifier: number;
  readonly format: string;
}

/** One statement's raw outcome: the command tag split as node-postgres splits it, rows as Postgres text. */
export interface RawResult {
  /** First word of the command tag ("SELECT", "INSERT", "CREATE"), null for an empty query. */
  readonly command: string | null;
  readonly rowCount: number | null;
  readonly columns: ColumnDescription[];
  readonly rows: unknown[][];
}

/** Receives rows as they arrive; throwing stops the request and drops the connection. */
export type RowSink = (row: (string | null)[], columns: readonly ColumnDescription[]) => unknown[];

/** Thrown when the server connection fails underneath a request. */
export class ConnectionLostError extends Error {
  readonly code = "ECONNRESET";
  constructor(message = "Connection terminated unexpectedly") {
    super(message);
  }
}

const SYNC = serialize.sync();
const DESCRIBE_PORTAL = serialize.describe({ type: "P" });
const EXECUTE = serialize.execute({ rows: 0 });
const DISCARD_ALL = serialize.query("DISCARD ALL");
const ROLLBACK_AND_DISCARD = Buffer.concat([serialize.query("ROLLBACK"), DISCARD_ALL]);
const COPY_FAIL = serialize.copyFail("COPY FROM STDIN is not supported by the SQL-over-HTTP gateway");
type BackendMessage = Parameters<Parameters<typeof parse>[1]>[0];
const COMMAND_TAG = /^([A-Za-z]+)(?: (\d+))?(?: (\d+))?/;

/** The work waiting for one ReadyForQuery. */
interface Pending {
  readonly results: RawResult[];
  columns: ColumnDescription[] | undefined;
  rows: unknown[][];
  error: Error | undefined;
  readonly sink: RowSink | undefined;
  resolve(results: RawResult[]): void;
  reject(err: Error): void;
}

/**
 * Parameter values as node-postgres sends JSON-born values (pg/lib/utils.js
 * prepareValue): null stays NULL, arrays become array literals, objects JSON,
 * everything else its string form.
 */
export function encodeParam(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return arrayLiteral(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function arrayLiteral(values: readonly unknown[]): string {
  const parts = values.map((v) => {
    if (v === null || v === undefined) return "NULL";
    if (Array.isArray(v)) return arrayLiteral(v);
    return `"${(encodeParam(v) as string).replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  });
  return `{${parts.join(",")}}`;
}

export class Session {
  readonly #socket: net.Socket;
  readonly #endpoint: InstanceEndpoint;
  /** The backend's cancel key (BackendKeyData), for abort(). */
  #cancelKey: { pid: number; secret: number } | undefined;
  readonly #queue: Pending[] = [];
  #status = "I";
  #closed = false;
  #closeReason: Error | undefined;
  /** The reset written after the last request, if any: settles when it has run. */
  #reset: Promise<RawResult[]> | undefined;
  /** When the pool last handed this session back (for idle timeouts). */
  idleSince = 0;

  private constructor(socket: net.Socket, endpoint: InstanceEndpoint) {
    this.#socket = socket;
    this.#endpoint = endpoint;
  }

  /** Connect over the instance's transport and log in (peer authentication on the process driver's socket). */
  static async connect(endpoint: InstanceEndpoint, startup: Record<string, string>): Promise<Session> {
    const socket = await connectBackend(endpoint);
    return new Promise((resolve, reject) => {
      const session = new Session(socket, endpoint);
      let ready = false;
      const fail = (err: Error) => {
        if (ready) return;
        ready = true;
        socket.destroy();
        reject(err);
      };
      socket.once("error", fail);
      socket.write(serialize.startup({ client_encoding: "UTF8", ...startup }));
      // Until the first ReadyForQuery, messages are the login's; then the session's own handler takes over.
      let onMessage = (msg: BackendMessage) => {
        if (msg instanceof DatabaseError) return fail(msg);
        if (msg.name.startsWith("authentication") && msg.name !== "authenticationOk") {
          return fail(new Error(`the instance asked the gateway for a password (${msg.name}); gateway connections use peer authentication`));
        }
        if (msg.name === "backendKeyData") {
          const key = msg as unknown as { processID: number; secretKey: number };
          session.#cancelKey = { pid: key.processID, secret: key.secretKey };
        }
        if (msg.name === "readyForQuery") {
          ready = true;
          socket.removeListener("error", fail);
          socket.on("error", (err) => session.#lost(err));
          socket.on("close", () => session.#lost(new ConnectionLostError()));
          onMessage = (m) => session.#handle(m);
          resolve(session);
        }
      };
      socket.once("close", () => fail(new ConnectionLostError("the instance closed the connection during login")));
      void parse(socket, (msg) => onMessage(msg));
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Run one SQL text. With params: extended protocol, one statement. Without:
   * simple protocol, several statements allowed, one result each. `reset`
   * writes DISCARD ALL right behind it (see settle()).
   */
  run(sql: string, params: readonly unknown[] | undefined, options: { reset: boolean; sink?: RowSink }): Promise<RawResult[]> {
    if (this.#closed) return Promise.reject(this.#closeReason ?? new ConnectionLostError());
    let message: Buffer;
    if (params && params.length > 0) {
      const values = params.map(encodeParam);
      message = Buffer.concat([serialize.parse({ text: sql }), serialize.bind({ values }), DESCRIBE_PORTAL, EXECUTE, SYNC, ...(options.reset ? [DISCARD_ALL] : [])]);
    } else {
      message = options.reset ? Buffer.concat([serialize.query(sql), DISCARD_ALL]) : serialize.query(sql);
    }
    const done = this.#expect(options.sink);
    if (options.reset) {
      this.#reset = this.#expect(undefined);
      this.#reset.catch(() => undefined); // observed in settle(); never an unhandled rejection
    }
    this.#socket.write(message);
    return done;
  }

  /**
   * Leave no session state behind: wait for the reset written with the last
   * request; if it failed (the request left a transaction open) or none was
   * written, roll back and DISCARD ALL now. Resolves true when the session is
   * clean and reusable.
   */
  async settle(): Promise<boolean> {
    if (this.#closed) return false;
    const reset = this.#reset;
    this.#reset = undefined;
    try {
      if (reset) {
        await reset;
        return this.#status === "I";
      }
    } catch (err) {
      if (!(err instanceof DatabaseError)) return false;
    }
    try {
      const clean = this.#status === "I";
      const done = clean ? [this.#expect(undefined)] : [this.#expect(undefined), this.#expect(undefined)];
      this.#socket.write(clean ? DISCARD_ALL : ROLLBACK_AND_DISCARD);
      await Promise.all(done);
      return this.#status === "I";
    } catch {
      return false;
    }
  }

  /** Drop the connection (the server ends the backend, cancelling what it runs). */
  destroy(): void {
    this.#closed = true;
    this.#socket.destroy();
  }

  /**
   * Stop whatever this session runs now and drop it: a CancelRequest (as psql
   * sends on Ctrl+C) ends the statement at once, where a closed socket alone is
   * noticed only at the next client_connection_check_interval. The session is
   * never reused afterwards, so the cancel cannot reach another request's
   * statement, however late it arrives.
   */
  abort(): void {
    if (this.#closed) return;
    if (this.#cancelKey) sendCancelRequest(this.#endpoint, this.#cancelKey.pid, this.#cancelKey.secret);
    this.destroy();
  }

  #expect(sink: RowSink | undefined): Promise<RawResult[]> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ results: [], columns: undefined, rows: [], error: undefined, sink, resolve, reject });
    });
  }

  #handle(msg: BackendMessage): void {
    const p = this.#queue[0];
    if (!p) return; // NOTICE or ParameterStatus between requests
    switch (msg.name) {
      case "rowDescription":
        p.columns = (msg as unknown as { fields: ColumnDescription[] }).fields;
        p.rows = [];
        return;
      case "dataRow": {
        if (p.error) return;
        const fields = (msg as unknown as { fields: (string | null)[] }).fields;
        try {
          p.rows.push(p.sink ? p.sink(fields, p.columns ?? []) : fields);
        } catch (err) {
          // The sink refused (response too large): stop reading, the server cancels when the socket closes.
          p.error = err as Error;
          this.destroy();
          this.#failAll(err as Error);
        }
        return;
      }
      case "commandComplete": {
        const m = COMMAND_TAG.exec((msg as unknown as { text: string }).text);
        const count = m?.[3] ?? m?.[2];
        p.results.push({ command: m?.[1] ?? null, rowCount: count === undefined ? null : Number(count), columns: p.columns ?? [], rows: p.rows });
        p.columns = undefined;
        p.rows = [];
        return;
      }
      case "emptyQuery":
        p.results.push({ command: null, rowCount: null, columns: [], rows: [] });
        return;
      case "error":
        p.error ??= msg as DatabaseError;
        return;
      case "copyInResponse":
        this.#socket.write(COPY_FAIL);
        return;
      case "readyForQuery": {
        this.#status = (msg as unknown as { status: string }).status;
        this.#queue.shift();
        if (p.error) p.reject(p.error);
        else p.resolve(p.results);
        return;
      }
      default:
        // parseComplete, bindComplete, noData, copy data, notices, notifications: nothing to keep.
        return;
    }
  }

  #lost(err: Error): void {
    this.#closed = true;
    this.#closeReason ??= err;
    this.#failAll(err instanceof ConnectionLostError ? err : Object.assign(new ConnectionLostError(err.message), { cause: err }));
  }

  #failAll(err: Error): void {
    for (const p of this.#queue.splice(0)) p.reject(p.error ?? err);
  }
}
