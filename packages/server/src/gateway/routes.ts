import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { CcpError, errorSchema } from "../errors.js";
import { bearerToken, DATABASE_ID_SHAPE } from "../ids.js";
import { fieldsOf, jsonRows, rowsAsObjects, type StatementResult } from "./execute.js";
import { ISOLATION_LEVELS, type Gateway, type IsolationLevel, type Statement, type Target, type TransactionOptions } from "./gateway.js";

const statementSchema = {
  type: "object",
  required: ["sql"],
  additionalProperties: false,
  properties: {
    sql: { type: "string", minLength: 1 },
    params: { type: "array", maxItems: 65535, description: "Values for $1, $2, … (JSON values; objects are sent as JSON)" },
  },
} as const;

/** The Postgres database inside the instance a request runs in; `default` when absent. */
const databaseField = { type: "string", minLength: 1, maxLength: 63, description: "Postgres database inside the instance (default: default)" } as const;

const queryBodySchema = { ...statementSchema, properties: { ...statementSchema.properties, database: databaseField } } as const;

const transactionSchema = {
  type: "object",
  required: ["statements"],
  additionalProperties: false,
  properties: {
    statements: { type: "array", minItems: 1, maxItems: 10_000, items: statementSchema },
    database: databaseField,
    isolation_level: {
      type: "string",
      enum: Object.keys(ISOLATION_LEVELS),
      description: "BEGIN ISOLATION LEVEL …; the database's default (read committed) when absent",
    },
    read_only: { type: "boolean", description: "BEGIN READ ONLY (true) or READ WRITE (false)" },
    deferrable: { type: "boolean", description: "BEGIN DEFERRABLE (with serializable and read_only: waits for a safe snapshot, then never fails to serialize)" },
  },
} as const;

interface TransactionBody {
  statements: Statement[];
  isolation_level?: IsolationLevel;
  read_only?: boolean;
  deferrable?: boolean;
}

function transactionOptions(body: TransactionBody): TransactionOptions {
  return {
    ...(body.isolation_level ? { isolationLevel: body.isolation_level } : {}),
    ...(body.read_only === undefined ? {} : { readOnly: body.read_only }),
    ...(body.deferrable === undefined ? {} : { deferrable: body.deferrable }),
  };
}

const ID_IN_HOST = new RegExp(`^(${DATABASE_ID_SHAPE})\\.`);

export function bearer(req: FastifyRequest): string | undefined {
  return bearerToken(req.headers.authorization);
}

/** The database a request is for: `/v1/databases/<id>/…` or the Host `db-<hex>.<domain>[:port]`. */
export function databaseIdOf(req: FastifyRequest, domain: string): string {
  const fromPath = (req.params as { id?: string }).id;
  if (fromPath) return fromPath;
  const host = (req.headers.host ?? "").toLowerCase().replace(/:\d+$/, "");
  const m = ID_IN_HOST.exec(host);
  if (m?.[1] && host === `${m[1]}.${domain}`) return m[1];
  throw new CcpError("not_found", `No database is addressed by host "${host}".`, {
    hint: `Send the request to https://db-<id>.${domain}/… or use the path /v1/databases/<id>/query.`,
  });
}

/**
 * Aborts when the client goes away before its answer is sent (closed the
 * connection, Ctrl+C in `ccp db connect`): the gateway then cancels the statement.
 */
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** Rows as objects with JSON-typed values, and the fields: ccp's `/query` shape. */
function rendered(r: StatementResult) {
  return { rows: rowsAsObjects(r.columns, jsonRows(r)), fields: fieldsOf(r) };
}

function execution(r: StatementResult) {
  const out: Record<string, unknown> = { command: r.command, rows_affected: r.rowCount ?? 0 };
  if (r.columns.length > 0) Object.assign(out, rendered(r));
  return out;
}

const last = (results: StatementResult[]): StatementResult => results[results.length - 1] as StatementResult;

export function gatewayRoutes(app: FastifyInstance, gateway: Gateway, domain: string): void {
  const authorize = (req: FastifyRequest): Promise<Target> =>
    gateway.authorize(databaseIdOf(req, domain), bearer(req), (req.body as { database?: string } | undefined)?.database);
  const opts = (summary: string, body: object) => ({
    bodyLimit: gateway.settings.maxBodyBytes,
    schema: { summary, tags: ["sql"], body, response: { "4xx": errorSchema, "5xx": errorSchema } },
  });

  for (const prefix of ["", "/v1/databases/:id"]) {
    app.post<{ Body: Statement }>(`${prefix}/query`, opts("Run a query; returns { rows, fields }", queryBodySchema), async (req, reply) => {
      const target = await authorize(req);
      const r = last(await gateway.run(target, req.body, clientGone(reply)));
      return { ...rendered(r), row_count: r.rowCount ?? r.rows.length, command: r.command };
    });

    app.post<{ Body: Statement }>(`${prefix}/execute`, opts("Run a statement; returns { rows_affected } (and rows with RETURNING)", queryBodySchema), async (req, reply) => {
      const target = await authorize(req);
      const results = await gateway.run(target, req.body, clientGone(reply));
      const out = execution(last(results));
      out["rows_affected"] = results.reduce((n, r) => n + (r.rowCount ?? 0), 0);
      return out;
    });

    app.post<{ Body: TransactionBody }>(`${prefix}/transaction`, opts("Run statements atomically; one result per statement", transactionSchema), async (req, reply) => {
      const target = await authorize(req);
      const results = await gateway.transaction(target, req.body.statements, transactionOptions(req.body), clientGone(reply));
      return { results: results.map((r) => execution(last(r))) };
    });
  }
}
