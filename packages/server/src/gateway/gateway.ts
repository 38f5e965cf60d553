import type { Catalog, DatabaseRow } from "../catalog/catalog.js";
import type { InstanceEndpoint } from "../runtime/driver.js";
import { CcpError } from "../errors.js";
import { secretMatches } from "../ids.js";
import type { Instances } from "../runtime/instances.js";
import { isDatabaseError, PostgresQueryError, ResponseTooLargeError, runStatement, type StatementResult } from "./execute.js";
import { GatewayPools } from "./pools.js";
import { ConnectionLostError, type Session } from "./session.js";

export interface GatewaySettings {
  /** Server connections the gateway keeps per instance (all its databases and roles together). */
  readonly poolSize: number;
  /** Default statement_timeout of gateway sessions, in ms. */
  readonly statementTimeoutMs: number;
  /** Cap on the row data of one response, in bytes. */
  readonly maxResponseBytes: number;
  /** Cap on a request body, in bytes. */
  readonly maxBodyBytes: number;
}

export const DEFAULT_GATEWAY_SETTINGS: GatewaySettings = Object.freeze({
  poolSize: 20,
  statementTimeoutMs: 30_000,
  maxResponseBytes: 32 * 1024 * 1024,
  maxBodyBytes: 4 * 1024 * 1024,
});

export interface Statement {
  readonly sql: string;
  readonly params?: readonly unknown[] | undefined;
}

/** Who a request is for, once authenticated. */
export interface Target {
  readonly row: DatabaseRow;
  readonly database: string;
}

/** BEGIN ISOLATION LEVEL …, in the words of ccp's API (`POST /transaction`). */
export const ISOLATION_LEVELS = {
  read_uncommitted: "READ UNCOMMITTED",
  read_committed: "READ COMMITTED",
  repeatable_read: "REPEATABLE READ",
  serializable: "SERIALIZABLE",
} as const;

export type IsolationLevel = keyof typeof ISOLATION_LEVELS;

export interface TransactionOptions {
  readonly isolationLevel?: IsolationLevel;
  readonly readOnly?: boolean;
  readonly deferrable?: boolean;
}

/** What the gateway needs of a database's limits (databases/service.ts). */
export interface GatewayLimits {
  /** The database's connections limit (undefined: every client slot). */
  connections(row: DatabaseRow): number | undefined;
  /** Why a database is read-only (over its storage quota), or undefined. */
  readOnly(row: DatabaseRow): { message: string; details: Record<string, unknown> } | undefined;
}

/** read_only_sql_transaction: a write in a read-only transaction. */
const READ_ONLY_SQL_TRANSACTION = "25006";

/**
 * The gateway's share of a connections limit: at most a quarter (at least one),
 * so wire clients keep the rest; the tenant role's CONNECTION LIMIT bounds the sum.
 */
export function gatewayPoolSize(poolSize: number, connections: number | undefined): number {
  return connections === undefined ? poolSize : Math.max(1, Math.min(poolSize, Math.ceil(connections / 4)));
}

const CACHE_MS = 1_000;
/** SQLSTATEs meaning the server is going away or not yet up: 503, retry. */
const UNAVAILABLE_SQLSTATES = new Set(["57P01", "57P02", "57P03", "08006", "08001", "08003", "53300"]);
/** too_many_connections: the instance's (or its database's, or role's) connection limit is reached. */
const TOO_MANY_CONNECTIONS = "53300";

/**
 * The SQL-over-HTTP data plane: resolves a database, checks its token in
 * constant time, runs statements on a pooled tenant connection and resets the
 * connection before anyone else gets it.
 */
export class Gateway {
  readonly settings: GatewaySettings;
  readonly #catalog: Catalog;
  readonly #instances: Instances;
  readonly #pools: GatewayPools;
  readonly #rows = new Map<string, { row: DatabaseRow | undefined; at: number }>();
  /** Bumped by invalidate(): a lookup that began before it must not cache what it read. */
  readonly #generation = new Map<string, number>();

  readonly #limits: GatewayLimits | undefined;

  constructor(options: { catalog: Catalog; instances: Instances; settings?: Partial<GatewaySettings>; limits?: GatewayLimits }) {
    this.settings = Object.freeze({ ...DEFAULT_GATEWAY_SETTINGS, ...options.settings });
    this.#limits = options.limits;
    this.#catalog = options.catalog;
    this.#instances = options.instances;
    this.#pools = new GatewayPools({ size: this.settings.poolSize, statementTimeoutMs: this.settings.statementTimeoutMs, idleTimeoutMs: 30_000 });
  }

  async #lookup(id: string): Promise<DatabaseRow | undefined> {
    const hit = this.#rows.get(id);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.row;
    const generation = this.#generation.get(id) ?? 0;
    const found = await this.#catalog.databases.findById(id); // ids only here, never names
    if ((this.#generation.get(id) ?? 0) === generation) this.#rows.set(id, { row: found, at: Date.now() });
    return found;
  }

  /** Drop the cached row of a database (token rotated): the next request reads the catalog. */
  invalidate(id: string): void {
    this.#rows.delete(id);
    this.#generation.set(id, (this.#generation.get(id) ?? 0) + 1);
  }

  /** Drop cached state and close connections of a database (destroyed, restored, token rotated). */
  async forget(id: string): Promise<void> {
    this.invalidate(id);
    this.#pools.forget(id);
  }

  /**
   * 404 for an unknown database; 401 for a missing or wrong token, the same
   * answer whether the token is garbage or another database's; 503 while not ready.
   * A suspended database is fine here: the request's lease wakes it.
   */
  async authorize(id: string, token: string | undefined, database?: string): Promise<Target> {
    const row = await this.#lookup(id);
    if (!row) {
      throw new CcpError("not_found", `No database ${id}.`, { hint: "Check the database id (ccp db list)." });
    }
    if (!token || !secretMatches(token, row.token_hash)) {
      throw new CcpError("unauthorized", "Invalid or missing database token.", {
        hint: "Send `Authorization: Bearer <token>` with the token of this database (in .cluster/config.json).",
      });
    }
    if (row.status !== "ready" && row.status !== "suspended") {
      throw new CcpError("not_ready", `Database ${id} is not ready (${row.status}).`, {
        hint: "Retry shortly.",
      });
    }
    return { row, database: database ?? row.database_name };
  }

  /**
   * The admin API's way in (`POST /v1/databases/{ref}/sql`, the web console): the
   * admin key or console session was checked already, so no database token.
   */
  async authorizeAdmin(id: string, database?: string): Promise<Target> {
    const row = await this.#lookup(id);
    if (!row) throw new CcpError("not_found", `No database ${id}.`, { hint: "Check the database id (ccp db list)." });
    // Like a tenant's request, the console's wakes a suspended database (the lease in #withSession).
    if (row.status !== "ready" && row.status !== "suspended") {
      throw new CcpError("not_ready", `Database ${id} is not ready (${row.status}).`, { hint: "Retry shortly." });
    }
    return { row, database: database ?? row.database_name };
  }

  /**
   * Run `fn` on a pooled session. When `signal` aborts first (the HTTP client
   * went away), the statement is cancelled and the session dropped (session.abort()).
   */
  async #withSession<T>(target: Target, fn: (session: Session, budget: { used: number }) => Promise<T>, signal?: AbortSignal): Promise<T> {
    // The lease wakes a suspended database (sharing the start with every other caller) and keeps it awake until released.
    const lease = await this.#instances.use(target.row.id, signal ? { signal } : {});
    try {
      return await this.#onSession(target, lease.endpoint, fn, signal);
    } finally {
      lease.release();
    }
  }

  async #onSession<T>(target: Target, endpoint: InstanceEndpoint, fn: (session: Session, budget: { used: number }) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const size = gatewayPoolSize(this.settings.poolSize, this.#limits?.connections(target.row));
    const pool = this.#pools.get(target.row.id, endpoint, target.row.owner_role, target.database, size);
    let session: Session;
    try {
      session = await pool.acquire();
    } catch (err) {
      throw this.#mapError(err, target);
    }
    let broken = false;
    const abort = () => {
      broken = true;
      session.abort();
    };
    if (signal?.aborted) abort();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      return await fn(session, { used: 0 });
    } catch (err) {
      broken ||= err instanceof ResponseTooLargeError || !isDatabaseError(err) || UNAVAILABLE_SQLSTATES.has(err.code ?? "");
      throw this.#mapError(err, target);
    } finally {
      signal?.removeEventListener("abort", abort);
      // Not awaited: the reset (written with the request where possible, session.settle()) finishes after
      // the response is on its way. The session returns to the pool only once it is clean.
      void pool.release(session, broken);
    }
  }

  #mapError(err: unknown, target: Target, extra: Record<string, unknown> = {}): Error {
    if (err instanceof CcpError) return err;
    if (isDatabaseError(err) && err.code === TOO_MANY_CONNECTIONS) {
      // The server is busy, not the request wrong: 503 + Retry-After, as for a database that is starting.
      return new CcpError("not_ready", `Database ${target.row.id} has no free connection slot right now (${err.message}).`, {
        hint: "Retry shortly; close idle wire connections, or raise the database's CONNECTION LIMIT if you lowered it.",
      });
    }
    if (isDatabaseError(err) && err.code === READ_ONLY_SQL_TRANSACTION && target.row.read_only_since) {
      // Over the storage quota: say which limit, how much is used and what to do, not just Postgres's "read-only transaction".
      const why = this.#limits?.readOnly(target.row);
      if (why) return new CcpError("storage_quota_exceeded", why.message, { hint: "See `ccp db limits " + target.row.id + "`.", details: { ...why.details, sqlstate: err.code } });
    }
    if (isDatabaseError(err) && !UNAVAILABLE_SQLSTATES.has(err.code ?? "")) return new PostgresQueryError(err, extra);
    const code = (err as NodeJS.ErrnoException).code;
    if (isDatabaseError(err) || err instanceof ConnectionLostError || code === "ECONNREFUSED" || code === "ENOENT" || code === "ECONNRESET") {
      return new CcpError("not_ready", `Database ${target.row.id} is not accepting connections right now.`, { hint: "Retry shortly." });
    }
    return err as Error;
  }

  /** One SQL text; several statements are allowed when there are no parameters. */
  async run(target: Target, stmt: Statement, signal?: AbortSignal): Promise<StatementResult[]> {
    checkStatement(stmt);
    return this.#withSession(target, (session, budget) => runStatement(session, stmt.sql, stmt.params, this.settings.maxResponseBytes, budget, true), signal);
  }

  /** All statements in one transaction: every one commits, or none does. */
  async transaction(
    target: Target,
    statements: readonly Statement[],
    options: TransactionOptions = {},
    signal?: AbortSignal,
  ): Promise<StatementResult[][]> {
    statements.forEach(checkStatement);
    return this.#withSession(target, async (session, budget) => {
      await session.run(beginStatement(options), undefined, { reset: false });
      const results: StatementResult[][] = [];
      for (let i = 0; i < statements.length; i++) {
        const s = statements[i] as Statement;
        try {
          results.push(await runStatement(session, s.sql, s.params, this.settings.maxResponseBytes, budget));
        } catch (err) {
          // release() rolls the transaction back (session.settle()).
          throw this.#mapError(err, target, { statement_index: i });
        }
      }
      await session.run("COMMIT", undefined, { reset: true });
      return results;
    }, signal);
  }

  /** Pooled server connections per database: in use, idle, waited for (metrics). */
  poolFigures(): { databaseId: string; inUse: number; idle: number; waiting: number }[] {
    return this.#pools.figures();
  }

  async close(): Promise<void> {
    this.#pools.close();
  }
}

/**
 * The protocol sends SQL text NUL-terminated: a NUL inside it would desynchronise
 * the connection, so refuse it here (Postgres text cannot hold NUL anyway).
 */
function checkStatement(stmt: Statement, index?: number): void {
  const details = index === undefined ? {} : { details: { statement_index: index } };
  if (stmt.sql.includes("\u0000")) {
    throw new CcpError("invalid_request", "SQL text cannot contain NUL (\\u0000) characters.", details);
  }
  if (stmt.params && nestingDepth(stmt.params, MAX_PARAM_DEPTH) > MAX_PARAM_DEPTH) {
    throw new CcpError("invalid_request", `params are nested more than ${MAX_PARAM_DEPTH} levels deep.`, {
      ...details,
      hint: "Send deeply nested values as a JSON string parameter (e.g. $1::jsonb with JSON.stringify(value)).",
    });
  }
}

/** Deeper than any array dimension Postgres accepts (6) or a sane JSON document; encoding recurses, so it is bounded. */
export const MAX_PARAM_DEPTH = 64;

/** Depth of nested arrays/objects in a JSON value, counted without recursion; stops counting past `limit`. */
export function nestingDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== "object") continue;
    if (depth > deepest) deepest = depth;
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

function beginStatement(o: TransactionOptions): string {
  const parts = ["BEGIN"];
  if (o.isolationLevel) parts.push(`ISOLATION LEVEL ${ISOLATION_LEVELS[o.isolationLevel]}`);
  if (o.readOnly !== undefined) parts.push(o.readOnly ? "READ ONLY" : "READ WRITE");
  if (o.deferrable !== undefined) parts.push(o.deferrable ? "DEFERRABLE" : "NOT DEFERRABLE");
  return parts.join(" ");
}
