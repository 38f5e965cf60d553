import type { FastifyInstance } from "fastify";
import type { DatabaseService } from "../../databases/service.js";
import type { Gateway } from "../../gateway/gateway.js";
import { fieldsOf, jsonRows } from "../../gateway/execute.js";
import { clientGone } from "../../gateway/routes.js";
import { errorSchema } from "../../errors.js";
import { refParams } from "./databases.js";

interface SqlBody {
  sql: string;
  params?: unknown[];
  database?: string;
  raw_text?: boolean;
}

const resultSchema = {
  type: "object",
  required: ["command", "row_count", "fields", "rows"],
  properties: {
    command: { type: ["string", "null"] },
    row_count: { type: ["integer", "null"] },
    fields: { type: "array", items: { type: "object", required: ["name", "type_oid"], properties: { name: { type: "string" }, type_oid: { type: "integer" } } } },
    rows: { type: "array", items: { type: "array" }, description: "Rows as arrays in field order" },
  },
} as const;

/**
 * SQL as the database's owner with the admin key (the web console's editor and
 * table browser): the gateway's pooled tenant sessions, no database token. A
 * client that goes away (aborted fetch) gets its statement cancelled.
 */
export function databaseSqlRoutes(app: FastifyInstance, databases: DatabaseService, gateway: Gateway): void {
  app.post<{ Params: { ref: string }; Body: SqlBody }>(
    "/v1/databases/:ref/sql",
    {
      bodyLimit: gateway.settings.maxBodyBytes,
      schema: {
        summary: "Run SQL as the database's owner (admin key); several statements allowed without params; one result per statement",
        tags: ["sql"],
        params: refParams,
        body: {
          type: "object",
          required: ["sql"],
          additionalProperties: false,
          properties: {
            sql: { type: "string", minLength: 1 },
            params: { type: "array", maxItems: 65535, description: "Values for $1, $2, …" },
            database: { type: "string", minLength: 1, maxLength: 63, description: "Postgres database inside the instance (default: default)" },
            raw_text: { type: "boolean", default: false, description: "Values as Postgres prints them (strings, null for NULL) instead of JSON types" },
          },
        },
        response: {
          200: {
            type: "object",
            required: ["results", "duration_ms"],
            properties: { results: { type: "array", items: resultSchema }, duration_ms: { type: "number", description: "Time ccpd spent running the SQL" } },
          },
          "4xx": errorSchema,
          "5xx": errorSchema,
        },
      },
    },
    async (req, reply) => {
      const row = await databases.getRow(req.params.ref);
      const target = await gateway.authorizeAdmin(row.id, req.body.database);
      const started = performance.now();
      const results = await gateway.run(target, { sql: req.body.sql, params: req.body.params }, clientGone(reply));
      const duration_ms = Math.round((performance.now() - started) * 100) / 100;
      const rows = req.body.raw_text === true ? (r: (typeof results)[number]) => r.rows : jsonRows;
      return { results: results.map((r) => ({ command: r.command, row_count: r.rowCount, fields: fieldsOf(r), rows: rows(r) })), duration_ms };
    },
  );
}
