import type { FastifyError, FastifyInstance, FastifyRequest } from "fastify";
import { CcpError, isCcpError } from "../errors.js";
import { DATABASE_ID_PATTERN } from "../ids.js";
import { POSTGRES_ERROR_FIELDS } from "@ccp/client";
import { jsonRows, PostgresQueryError, rowsAsObjects, type StatementResult } from "./execute.js";
import type { Gateway, IsolationLevel, Target, TransactionOptions } from "./gateway.js";
import { bearer, clientGone } from "./routes.js";

/**
 * `POST /sql` in the wire format of Neon's SQL-over-HTTP proxy, so the
 * unmodified `@neondatabase/serverless` driver (`neon()`, `sql.query()`,
 * `sql.transaction()`, and `Pool.query()` with `poolQueryViaFetch`) runs against
 * ccpd once `neonConfig.fetchEndpoint` points here. The format follows the
 * driver's source and Neon's proxy (proxy/src/serverless/sql_over_http.rs).
 *
 * Differences from Neon, on purpose:
 * - The connection string's user must be the database's owner role: the
 *   gateway runs every query as that role, so a different user is refused
 *   rather than silently swapped. Its query parameters (the driver adds
 *   `application_name`) are ignored.
 * - A query without parameters runs over the simple protocol, so several
 *   statements in one text are allowed (Neon refuses them); the last one's
 *   result is returned.
 * - JWT auth is not supported; `Authorization: Bearer <database token>` is
 *   accepted when the connection string has no password.
 * - Without `Neon-Raw-Text-Output: true` values are mapped to JSON the ccp way
 *   (json-types.ts), close to but not the same as Neon's (timestamps are ISO 8601).
 *   The driver always asks for raw text and parses types itself.
 */

interface NeonQuery {
  readonly query: string;
  readonly params?: unknown[];
  readonly arrayMode?: boolean;
}

type NeonBody = Partial<NeonQuery> & { readonly queries?: NeonQuery[] };

// Unknown properties are ignored, as Neon's proxy does: the driver is a third
// party and may add fields in any release.
const querySchema = {
  type: "object",
  required: ["query"],
  properties: {
    query: { type: "string" },
    params: { type: "array", maxItems: 65535 },
    arrayMode: { type: "boolean" },
  },
} as const;

const bodySchema = {
  type: "object",
  properties: {
    ...querySchema.properties,
    queries: { type: "array", maxItems: 10_000, items: querySchema },
  },
} as const;

/** Neon-Batch-Isolation-Level's values (the driver's names), in ccp's words. */
const NEON_ISOLATION_LEVELS: Readonly<Record<string, IsolationLevel>> = {
  Serializable: "serializable",
  ReadUncommitted: "read_uncommitted",
  ReadCommitted: "read_committed",
  RepeatableRead: "repeatable_read",
};

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** Neon's proxy treats a flag as set only when its header is exactly "true". */
const flag = (req: FastifyRequest, name: string): boolean => header(req, name) === "true";

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new CcpError("invalid_request", "Neon-Connection-String has a malformed percent-encoding.");
  }
}

/**
 * `postgresql://<owner role>:<token>@db-<hex>.<domain>/<database>`: the host
 * names the database, the password is its HTTP token, the path picks the
 * Postgres database inside the instance.
 */
async function authorize(req: FastifyRequest, gateway: Gateway, domain: string): Promise<Target> {
  const raw = header(req, "neon-connection-string");
  if (!raw) {
    throw new CcpError("invalid_request", "Missing Neon-Connection-String header.", {
      hint: `Pass the database's connection string to neon(): postgresql://clusterbase:<token>@db-<id>.${domain}/default`,
    });
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CcpError("invalid_request", "Neon-Connection-String is not a valid URL.");
  }
  const host = url.hostname.toLowerCase();
  const id = host.split(".")[0] ?? "";
  if (!/^postgres(ql)?:$/.test(url.protocol) || !DATABASE_ID_PATTERN.test(id) || host !== `${id}.${domain}`) {
    throw new CcpError("not_found", `No database is addressed by the connection string's host "${host}".`, {
      hint: `Use the host db-<id>.${domain} of a database (ccp db list).`,
    });
  }
  const token = url.password ? decode(url.password) : bearer(req);
  const database = decode(url.pathname.replace(/^\//, ""));
  const target = await gateway.authorize(id, token, database || undefined);
  // Checked after the token, so only holders of this database's token learn its owner role.
  const user = decode(url.username);
  if (user && user !== target.row.owner_role) {
    throw new CcpError("invalid_request", `SQL over HTTP runs as the database's owner role "${target.row.owner_role}", not "${user}".`, {
      hint: `Use postgresql://${target.row.owner_role}:<token>@${host}/${target.database} as the connection string.`,
    });
  }
  return target;
}

function batchOptions(req: FastifyRequest): TransactionOptions {
  const level = header(req, "neon-batch-isolation-level");
  const isolationLevel = level === undefined ? undefined : Object.hasOwn(NEON_ISOLATION_LEVELS, level) ? NEON_ISOLATION_LEVELS[level] : undefined;
  if (level !== undefined && isolationLevel === undefined) {
    throw new CcpError("invalid_request", `Invalid isolation level "${level}".`, { hint: `Use one of ${Object.keys(NEON_ISOLATION_LEVELS).join(", ")}.` });
  }
  return {
    ...(isolationLevel === undefined ? {} : { isolationLevel }),
    ...(flag(req, "neon-batch-read-only") ? { readOnly: true } : {}),
    ...(flag(req, "neon-batch-deferrable") ? { deferrable: true } : {}),
  };
}

/** The driver asks for raw text (Neon-Raw-Text-Output) and parses types itself; others get ccp's JSON values. */
function neonResult(results: StatementResult[], arrayMode: boolean, rawText: boolean) {
  const r = results[results.length - 1] as StatementResult;
  const rows = rawText ? r.rows : jsonRows(r);
  return {
    fields: r.columns,
    rows: arrayMode ? rows : rowsAsObjects(r.columns, rows),
    command: r.command,
    rowCount: r.rowCount,
    rowAsArray: arrayMode,
  };
}

/**
 * The body Neon's proxy sends for an error the client caused: top-level
 * `message` and Postgres fields, HTTP 400, which the driver turns into a
 * NeonDbError carrying those fields. ccp's own client errors (token, unknown
 * database, bad request) get the same shape with ccp's stable `code`, since
 * the driver reports any other status only as "Server error (HTTP status …)".
 * Server-side failures (5xx, not ready) return undefined and are left to
 * ccpd's own error handler.
 */
function neonErrorBody(err: FastifyError | Error): Record<string, unknown> | undefined {
  if (err instanceof PostgresQueryError) {
    const body: Record<string, unknown> = { message: err.pg.message, code: err.pg.code ?? null };
    for (const k of POSTGRES_ERROR_FIELDS) body[k] = err.pg[k] ?? null;
    return body;
  }
  if (isCcpError(err)) {
    return err.status < 500 ? { message: err.message, code: err.code, ...(err.hint === undefined ? {} : { hint: err.hint }) } : undefined;
  }
  const status = (err as FastifyError).statusCode;
  if (status === undefined || status < 400 || status >= 500) return undefined;
  const validation = (err as FastifyError).validation !== undefined;
  return { message: validation ? `Invalid request: ${err.message}` : err.message, code: status === 413 ? "payload_too_large" : "invalid_request" };
}

export function neonRoutes(app: FastifyInstance, gateway: Gateway, domain: string): void {
  // A scope of its own: Neon's body parsing and error shape must not leak into ccp's API.
  void app.register(async (scope) => {
    // The driver posts JSON without a Content-Type (fetch then sends text/plain),
    // and Neon's proxy reads the body as JSON whatever the type says.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "string" }, scope.getDefaultJsonParser("error", "error"));

    scope.setErrorHandler((err: FastifyError, _req, reply) => {
      const body = neonErrorBody(err);
      if (!body) throw err; // ccpd's handler logs it and answers 5xx
      return reply.code(400).send(body);
    });

    scope.post<{ Body: NeonBody }>(
      "/sql",
      {
        bodyLimit: gateway.settings.maxBodyBytes,
        schema: { summary: "Neon serverless-driver protocol: run a query, or a batch in one transaction", tags: ["sql"], body: bodySchema },
      },
      async (req, reply) => {
        const body = req.body;
        if ((body.query === undefined) === (body.queries === undefined)) {
          throw new CcpError("invalid_request", "Send either { query, params } or { queries: [{ query, params }, …] }.");
        }
        const options = batchOptions(req);
        const target = await authorize(req, gateway, domain);
        const rawText = flag(req, "neon-raw-text-output");
        const arrayMode = flag(req, "neon-array-mode");
        const gone = clientGone(reply);

        if (body.queries === undefined) {
          const results = await gateway.run(target, { sql: body.query as string, params: body.params }, gone);
          return neonResult(results, body.arrayMode ?? arrayMode, rawText);
        }
        const results = await gateway.transaction(
          target,
          body.queries.map((q) => ({ sql: q.query, params: q.params })),
          options,
          gone,
        );
        // Neon's proxy echoes the transaction settings it applied.
        if (options.isolationLevel) void reply.header("neon-batch-isolation-level", header(req, "neon-batch-isolation-level"));
        if (options.readOnly) void reply.header("neon-batch-read-only", "true");
        if (options.deferrable) void reply.header("neon-batch-deferrable", "true");
        return { results: results.map((r, i) => neonResult(r, body.queries?.[i]?.arrayMode ?? arrayMode, rawText)) };
      },
    );
  });
}
