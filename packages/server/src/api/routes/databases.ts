import type { FastifyInstance } from "fastify";
import type { DatabaseService, DatabaseView } from "../../databases/service.js";
import { errorSchema } from "../../errors.js";
import { DATABASE_ID_PATTERN } from "../../ids.js";

export const databaseSchema = {
  type: "object",
  required: ["id", "name", "status", "host", "database", "user", "pg_version", "runtime", "restarts", "created_at", "suspend_after", "last_active_at"],
  properties: {
    id: { type: "string", pattern: DATABASE_ID_PATTERN.source },
    name: { type: "string" },
    status: { type: "string", enum: ["creating", "ready", "suspended", "restarting", "restoring", "stopped", "failed", "destroying", "destroyed"] },
    host: { type: "string" },
    database: { type: "string" },
    user: { type: "string" },
    pg_version: { type: "string" },
    runtime: { type: "string" },
    restarts: { type: "integer" },
    created_at: { type: "string", format: "date-time" },
    suspend_after: { type: "string", description: "Idle time after which it is suspended (e.g. 5m), or never" },
    last_active_at: { type: ["string", "null"], description: "Last request, session end, wake or start seen" },
    last_error: { type: "string" },
    databases: { type: "array", items: { type: "string" }, description: "Postgres databases inside the instance (when it could be asked)" },
    parent_id: { type: "string", description: "Set on a branch: the database it was copied from" },
    branched_at: { type: "string", format: "date-time", description: "When a branch's data was taken from its parent" },
    branch_lsn: { type: "string", description: "The parent's WAL position a branch's data was taken at" },
    expires_at: { type: "string", format: "date-time", description: "When ccpd destroys it by itself" },
  },
} as const;

/** What a create answers (a new database, a branch): its credentials, shown only here. */
export const createdSchema = {
  type: "object",
  required: ["database", "token", "password", "database_url"],
  properties: {
    database: databaseSchema,
    token: { type: "string", description: "HTTP token; shown only here" },
    password: { type: "string", description: "Wire-protocol password of the owner role" },
    database_url: { type: "string", description: "postgresql:// URL through ccpd's wire endpoint" },
  },
} as const;

const suspendAfterField = {
  type: "string",
  description: "Idle time before the database is suspended: 30s, 5m, 2h, 1d, or never (default: the server's --suspend-after)",
} as const;

export const refParams = {
  type: "object",
  required: ["ref"],
  properties: { ref: { type: "string", description: "Database id (db-…) or name" } },
} as const;

export function databaseRoutes(app: FastifyInstance, databases: DatabaseService): void {
  app.post<{ Body: { name: string; owner?: string; password?: string; suspend_after?: string } }>(
    "/v1/databases",
    {
      schema: {
        summary: "Create a database (its own Postgres server)",
        tags: ["databases"],
        body: {
          type: "object",
          required: ["name"],
          additionalProperties: false,
          properties: {
            name: { type: "string", description: "3–32 of a-z 0-9 - _, starting with a letter; with owner: 3–16 of a-z 0-9 _" },
            owner: { type: "string", description: "Owner role instead of clusterbase (`ccp db provision -U`): 3–16 of a-z 0-9 _, not reserved; needs password" },
            password: { type: "string", description: "Wire password of the owner role, 8 or more characters; needs owner" },
            suspend_after: suspendAfterField,
          },
        },
        response: {
          201: createdSchema,
          "4xx": errorSchema,
        },
      },
    },
    async (req, reply) => {
      const { name, owner, password, suspend_after } = req.body;
      const result = await databases.create(name, { owner, password }, undefined, { suspendAfter: suspend_after });
      return reply.code(201).send(result);
    },
  );

  app.get(
    "/v1/databases",
    {
      schema: {
        summary: "List databases",
        tags: ["databases"],
        response: { 200: { type: "object", required: ["databases"], properties: { databases: { type: "array", items: databaseSchema } } } },
      },
    },
    async () => ({ databases: await databases.withDatabases(await databases.list()) }),
  );

  app.get<{ Params: { ref: string }; Querystring: { show_secrets?: boolean } }>(
    "/v1/databases/:ref",
    {
      schema: {
        summary: "Show a database (with its DATABASE_URL when show_secrets=true)",
        tags: ["databases"],
        params: refParams,
        querystring: { type: "object", additionalProperties: false, properties: { show_secrets: { type: "boolean", default: false } } },
        response: {
          200: { type: "object", required: ["database"], properties: { database: databaseSchema, database_url: { type: "string" } } },
          "4xx": errorSchema,
        },
      },
    },
    async (req) => {
      const database = (await databases.withDatabases([await databases.get(req.params.ref)], 5_000))[0] as DatabaseView;
      return req.query.show_secrets ? { database, database_url: await databases.databaseUrl(database.id) } : { database };
    },
  );

  app.delete<{ Params: { ref: string }; Querystring: { force?: boolean } }>(
    "/v1/databases/:ref",
    {
      schema: {
        summary: "Destroy a database and all its data (a parent with branches: 409 unless force=true; its branches then stay, standalone)",
        tags: ["databases"],
        params: refParams,
        querystring: { type: "object", additionalProperties: false, properties: { force: { type: "boolean", default: false } } },
        response: { 200: { type: "object", required: ["database"], properties: { database: databaseSchema } }, "4xx": errorSchema },
      },
    },
    async (req) => ({ database: await databases.destroy(req.params.ref, { force: req.query.force }) }),
  );

  app.patch<{ Params: { ref: string }; Body: { suspend_after: string | null } }>(
    "/v1/databases/:ref",
    {
      schema: {
        summary: "Change a database's settings (its suspend timeout; null: the server's default)",
        tags: ["databases"],
        params: refParams,
        body: {
          type: "object",
          required: ["suspend_after"],
          additionalProperties: false,
          properties: { suspend_after: { ...suspendAfterField, type: ["string", "null"] } },
        },
        response: { 200: { type: "object", required: ["database"], properties: { database: databaseSchema } }, "4xx": errorSchema },
      },
    },
    async (req) => ({ database: await databases.setSuspendAfter(req.params.ref, req.body.suspend_after) }),
  );

  app.post<{ Params: { ref: string } }>(
    "/v1/databases/:ref/suspend",
    {
      schema: {
        summary: "Suspend a database now (checkpoint, last WAL archived, server stopped); any request wakes it",
        tags: ["databases"],
        params: refParams,
        response: { 200: { type: "object", required: ["database"], properties: { database: databaseSchema } }, "4xx": errorSchema },
      },
    },
    async (req) => ({ database: await databases.suspend(req.params.ref) }),
  );

  app.post<{ Params: { ref: string } }>(
    "/v1/databases/:ref/wake",
    {
      schema: {
        summary: "Wake a suspended database now",
        tags: ["databases"],
        params: refParams,
        response: { 200: { type: "object", required: ["database"], properties: { database: databaseSchema } }, "4xx": errorSchema },
      },
    },
    async (req) => ({ database: await databases.wake(req.params.ref) }),
  );
}
