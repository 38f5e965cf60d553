import { ConnectionError, CcpError, errorFromResponse } from "./errors.js";
import { sql as sqlTag, type Statement } from "./sql.js";

/**
 * A value as the gateway sends it (README, "Types over HTTP"): int2/int4/float
 * → number, int8/numeric → string (no precision lost), bool → boolean,
 * json/jsonb → the JSON value, timestamps → ISO 8601 strings, arrays → arrays.
 *
 * @example
 * ```ts
 * const { rows } = await db.query("SELECT 1 AS n, 2::int8 AS big, now() AS at");
 * // [{ n: 1, big: "2", at: "2026-04-12T14:22:00.123456Z" }]
 * ```
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * A row as an object keyed by column name; the default row type of queries.
 *
 * @example
 * ```ts
 * const row: Row = (await db.query("SELECT 1 AS one")).rows[0]!; // { one: 1 }
 * ```
 */
export type Row = Record<string, JsonValue>;

/**
 * A result column: its name and the OID of its Postgres type (23 = int4, 25 = text, …).
 *
 * @example
 * ```ts
 * const { fields } = await db.query("SELECT 1 AS n");
 * fields; // [{ name: "n", typeOid: 23 }]
 * ```
 */
export interface Field {
  readonly name: string;
  readonly typeOid: number;
}

/**
 * What {@link Client.query} resolves to.
 *
 * @example
 * ```ts
 * const r: QueryResult<{ id: number }> = await db.query("SELECT id FROM users");
 * console.log(r.command, r.rowCount, r.rows.map((u) => u.id));
 * ```
 */
export interface QueryResult<T = Row> {
  readonly rows: T[];
  readonly fields: Field[];
  /** Rows returned, or for INSERT/UPDATE/DELETE the rows affected. */
  readonly rowCount: number;
  /** The command tag's verb: SELECT, INSERT, UPDATE, CREATE, … */
  readonly command: string;
}

/**
 * What {@link Client.execute} resolves to, and each result of {@link Client.transaction}.
 *
 * @example
 * ```ts
 * const r: ExecuteResult = await db.execute("DELETE FROM sessions WHERE expires < now()");
 * console.log(`${r.rowsAffected} sessions expired`);
 * ```
 */
export interface ExecuteResult<T = Row> {
  readonly command: string;
  readonly rowsAffected: number;
  /** Present when the statement returns rows (RETURNING, SELECT). */
  readonly rows?: T[];
  readonly fields?: Field[];
}

/**
 * The `fetch` the client calls; any WHATWG-compatible implementation will do.
 *
 * @example
 * ```ts
 * const logged: Fetch = (url, init) => {
 *   console.log("POST", url);
 *   return fetch(url, init);
 * };
 * const db = createClient({ url, token, fetch: logged });
 * ```
 */
export type Fetch = (input: string, init: RequestInit) => Promise<Response>;

/**
 * Options of {@link createClient}.
 *
 * @example
 * ```ts
 * const options: ClientOptions = { url: "http://127.0.0.1:7070", databaseId: "db-c1cf9a9be667", token };
 * ```
 */
export interface ClientOptions {
  /**
   * The database's URL, `https://db-<id>.<domain>`; or, with `databaseId`, the
   * URL of ccpd itself (e.g. `http://127.0.0.1:7070`), which then routes by path.
   */
  readonly url: string;
  /** The database token (`DATABASE_TOKEN`, or `token` in .cluster/config.json). */
  readonly token: string;
  /** Address the database by path, `/v1/databases/<id>/…`, instead of by host name. */
  readonly databaseId?: string | undefined;
  /**
   * The Postgres database inside the instance every request runs in (an
   * instance can hold several: `CREATE DATABASE app`); `default` when omitted.
   *
   * @example
   * ```ts
   * const app = createClient({ url, databaseId: "db-c1cf9a9be667", token, database: "app" });
   * ```
   */
  readonly database?: string | undefined;
  /** Defaults to the global `fetch`. */
  readonly fetch?: Fetch | undefined;
}

/**
 * Statements of a transaction, or a function returning them from the {@link sql} tag it is given.
 *
 * @example
 * ```ts
 * const asArray: TransactionInput = [{ sql: "DELETE FROM carts WHERE user_id = $1", params: [id] }];
 * const asCallback: TransactionInput = (sql) => [sql`DELETE FROM carts WHERE user_id = ${id}`];
 * ```
 */
export type TransactionInput = readonly Statement[] | ((sql: typeof sqlTag) => readonly Statement[] | Promise<readonly Statement[]>);

/**
 * How {@link Client.transaction} begins its transaction (`BEGIN ISOLATION LEVEL … READ ONLY …`).
 * Absent fields take the database's defaults (read committed, read write, not deferrable).
 *
 * @example
 * ```ts
 * const options: TransactionOptions = { isolationLevel: "serializable", readOnly: true, deferrable: true };
 * ```
 */
export interface TransactionOptions {
  readonly isolationLevel?: "read_uncommitted" | "read_committed" | "repeatable_read" | "serializable";
  readonly readOnly?: boolean;
  readonly deferrable?: boolean;
}

interface WireField {
  name: string;
  type_oid: number;
}
interface WireExecute {
  command: string;
  rows_affected: number;
  rows?: unknown[];
  fields?: WireField[];
}

/**
 * A client of one database's SQL-over-HTTP gateway. Stateless: every call is
 * one HTTP request, and each runs on whichever pooled connection is free, so
 * session state (SET, temp tables, an open BEGIN) does not carry over between
 * calls; use {@link Client.transaction} for statements that belong together.
 * Create one with {@link createClient}.
 *
 * @example
 * ```ts
 * import { createClient } from "@ccp/client";
 *
 * const db = createClient({ url: "http://127.0.0.1:7070", databaseId: "db-c1cf9a9be667", token });
 * const { rows } = await db.query<{ id: number; name: string }>("SELECT id, name FROM users WHERE id = $1", [42]);
 * ```
 */
export class Client {
  readonly #base: string;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #fetch: Fetch;
  readonly #database: string | undefined;

  constructor(options: ClientOptions) {
    if (typeof options?.url !== "string" || !URL.canParse(options.url)) throw new TypeError(`createClient: url must be an absolute URL, got ${JSON.stringify(options?.url)}.`);
    if (typeof options.token !== "string" || options.token === "") throw new TypeError("createClient: token is required (the database token).");
    const url = options.url.replace(/\/+$/, "");
    this.#base = options.databaseId ? `${url}/v1/databases/${encodeURIComponent(options.databaseId)}` : url;
    this.#headers = Object.freeze({ "content-type": "application/json", authorization: `Bearer ${options.token}` });
    const f = options.fetch ?? (globalThis.fetch as Fetch | undefined);
    if (typeof f !== "function") throw new TypeError("createClient: no global fetch; pass one as the `fetch` option.");
    this.#fetch = f;
    if (options.database !== undefined && (typeof options.database !== "string" || options.database === "")) {
      throw new TypeError("createClient: database must be a non-empty string (a Postgres database name).");
    }
    this.#database = options.database;
  }

  /**
   * Run a query and get its rows (for several `;`-separated statements without
   * parameters, the last one's). Takes SQL with `$1, $2, …` and their values,
   * or a statement built with the {@link sql} tag.
   *
   * @example
   * ```ts
   * const { rows, rowCount } = await db.query<{ id: number }>("SELECT id FROM users WHERE email = $1", ["a@co.com"]);
   * const same = await db.query(sql`SELECT id FROM users WHERE email = ${"a@co.com"}`);
   * ```
   */
  async query<T = Row>(statement: string | Statement, params?: readonly unknown[]): Promise<QueryResult<T>> {
    const body = await this.#post<{ rows: T[]; fields: WireField[]; row_count: number; command: string }>("/query", toStatement(statement, params));
    return { rows: body.rows, fields: body.fields.map(toField), rowCount: body.row_count, command: body.command };
  }

  /**
   * Run a statement for its effect: INSERT, UPDATE, DELETE, DDL. `rowsAffected`
   * counts the rows written (summed over `;`-separated statements); `rows` is
   * there when the statement returns some, as with RETURNING.
   *
   * @example
   * ```ts
   * const { rowsAffected } = await db.execute("UPDATE users SET active = false WHERE last_seen < $1", [cutoff]);
   * const { rows } = await db.execute(sql`INSERT INTO users (name) VALUES (${"Bob"}) RETURNING id`);
   * ```
   */
  async execute<T = Row>(statement: string | Statement, params?: readonly unknown[]): Promise<ExecuteResult<T>> {
    return toExecuteResult<T>(await this.#post<WireExecute>("/execute", toStatement(statement, params)));
  }

  /**
   * Run statements in one transaction: all commit, or none does. Resolves to
   * one result per statement. On failure the whole transaction is rolled back
   * and the error's `statementIndex` says which statement failed. The
   * statements are sent together, so a later one cannot use an earlier one's
   * result in JavaScript; use SQL for that (RETURNING in a CTE, `currval`, …).
   *
   * @example
   * ```ts
   * const [user, log] = await db.transaction([
   *   { sql: "INSERT INTO users (name) VALUES ($1) RETURNING id", params: ["Alice"] },
   *   { sql: "INSERT INTO logs (action) VALUES ($1)", params: ["user_created"] },
   * ]);
   * await db.transaction((sql) => [sql`UPDATE accounts SET balance = balance - ${10} WHERE id = ${1}`, sql`UPDATE accounts SET balance = balance + ${10} WHERE id = ${2}`]);
   * // A consistent read of several tables:
   * await db.transaction([{ sql: "SELECT count(*) FROM orders" }, { sql: "SELECT sum(total) FROM orders" }], { isolationLevel: "repeatable_read", readOnly: true });
   * ```
   */
  async transaction(input: TransactionInput, options: TransactionOptions = {}): Promise<ExecuteResult[]> {
    const statements = typeof input === "function" ? await input(sqlTag) : input;
    if (!Array.isArray(statements) || statements.length === 0) throw new TypeError("transaction: expected a non-empty array of statements.");
    const body = await this.#post<{ results: WireExecute[] }>("/transaction", {
      statements: statements.map((s: Statement) => toStatement(s)),
      ...(options.isolationLevel === undefined ? {} : { isolation_level: options.isolationLevel }),
      ...(options.readOnly === undefined ? {} : { read_only: options.readOnly }),
      ...(options.deferrable === undefined ? {} : { deferrable: options.deferrable }),
    });
    return body.results.map((r) => toExecuteResult(r));
  }

  /**
   * Tagged-template query resolving to the rows: every `${value}` is sent as
   * a parameter, never spliced into the SQL text.
   *
   * @example
   * ```ts
   * const users = await db.sql<{ id: number; name: string }>`SELECT id, name FROM users WHERE id = ${id}`;
   * ```
   */
  readonly sql = async <T = Row>(strings: TemplateStringsArray, ...values: unknown[]): Promise<T[]> => (await this.query<T>(sqlTag(strings, ...values))).rows;

  async #post<T>(path: string, payload: unknown): Promise<T> {
    const url = this.#base + path;
    const body = JSON.stringify(this.#database === undefined ? payload : { ...(payload as object), database: this.#database }, jsonParam);
    let res: Response;
    try {
      res = await this.#fetch(url, { method: "POST", headers: this.#headers, body });
    } catch (err) {
      throw new ConnectionError(url, err);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) throw errorFromResponse(res.status, parsed, res.headers.get("retry-after"));
    if (typeof parsed !== "object" || parsed === null) {
      throw new CcpError("bad_response", `${url} answered HTTP ${res.status} with a body that is not a gateway response.`, {
        status: res.status,
        hint: "Check that the URL points at a ccp database or at ccpd.",
      });
    }
    return parsed as T;
  }
}

/**
 * Create a client for one database.
 *
 * @example
 * ```ts
 * import { createClient } from "@ccp/client";
 *
 * // Deployed: the database's own host name.
 * const db = createClient({ url: `https://${process.env.DATABASE_ID}.clusterbase.dev`, token: process.env.DATABASE_TOKEN! });
 * // Local ccpd: its URL plus the database id (db-….localhost needs no DNS this way).
 * const local = createClient({ url: "http://127.0.0.1:7070", databaseId: "db-c1cf9a9be667", token });
 * ```
 */
export function createClient(options: ClientOptions): Client {
  return new Client(options);
}

function toStatement(statement: string | Statement, params?: readonly unknown[]): { sql: string; params?: unknown[] } {
  if (typeof statement === "string") return params === undefined ? { sql: statement } : { sql: statement, params: [...params] };
  if (params !== undefined) throw new TypeError("Pass params either with the statement or as the second argument, not both.");
  if (typeof statement?.sql !== "string") throw new TypeError("Expected SQL text or a statement { sql, params }.");
  const p = statement.params;
  return p === undefined || p.length === 0 ? { sql: statement.sql } : { sql: statement.sql, params: [...p] };
}

function toField(f: WireField): Field {
  return { name: f.name, typeOid: f.type_oid };
}

function toExecuteResult<T>(r: WireExecute): ExecuteResult<T> {
  const out: { command: string; rowsAffected: number; rows?: T[]; fields?: Field[] } = { command: r.command, rowsAffected: r.rows_affected };
  if (r.rows) out.rows = r.rows as T[];
  if (r.fields) out.fields = r.fields.map(toField);
  return out;
}

/**
 * Parameter values JSON cannot carry as is: bigint → decimal string, bytes →
 * bytea hex (`\x…`), undefined in a list → null (as node-postgres does). Dates already
 * become ISO strings through their toJSON.
 */
function jsonParam(this: unknown, key: string, value: unknown): unknown {
  const original = (this as Record<string, unknown>)[key]; // before toJSON, which turns a Buffer into { type, data }
  if (original instanceof Uint8Array) return `\\x${Array.from(original, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  if (typeof value === "bigint") return value.toString();
  if (value === undefined && Array.isArray(this)) return null;
  return value;
}
