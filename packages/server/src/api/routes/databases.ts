import type { FastifyInstance } from "fastify";
import type { DatabaseService, DatabaseView } from "../../databases/service.js";
import { errorSchema } from "../../errors.js";
import { DATABASE_ID_PATTERN } from "../../ids.js";

const limitViewSchema = {
  type: "object",
  required: ["name", "limit", "source", "usage", "enforced", "detail"],
  properties: {
    name: { type: "string", enum: ["memory", "cpu", "storage", "connections", "pids", "io"] },
    limit: { type: ["number", "null"], description: "Bytes (memory, storage), cores (cpu), count (connections, pids) or bytes/s (io); null: unlimited" },
    source: { type: "string", enum: ["database", "default", "none"], description: "Set on this database, the server's default, or unlimited" },
    usage: { type: ["number", "null"], description: "Current usage in the same unit (cpu: CPU seconds used since start); null: not measured here (or not running)" },
    enforced: { type: "boolean", description: "Whether something on this host enforces it now" },
    detail: { type: "string", description: "How it is enforced, or why not" },
  },
} as const;

/** Limits as a create or a change writes them; PATCH also takes null (back to the server's default). */
const limitsInputSchema = (nullable: boolean) =>
  ({
    type: "object",
    additionalProperties: false,
    description: "Sizes as strings with a unit (512MiB, 2GiB, 1.5GB) or integers of bytes; cpu in cores",
    properties: {
      memory: { type: nullable ? ["string", "integer", "null"] : ["string", "integer"], description: "Memory limit, at least 128MiB" },
      cpu: { type: nullable ? ["number", "string", "null"] : ["number", "string"], description: "CPU quota in cores (0.5: half a core), at most the host's cores" },
      storage: { type: nullable ? ["string", "integer", "null"] : ["string", "integer"], description: "Data + WAL, at least 128MiB; past it the database turns read-only" },
      connections: { type: nullable ? ["integer", "string", "null"] : ["integer", "string"], description: "Client connections at once, 1–90" },
      pids: { type: nullable ? ["integer", "string", "null"] : ["integer", "string"], description: "Processes, at least connections + 25" },
      io: { type: nullable ? ["string", "integer", "null"] : ["string", "integer"], description: "Read and write bandwidth per second (cgroup v2)" },
    },
  }) as const;

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
    read_only: {
      type: "object",
      description: "Set while the database is read-only for being over its storage limit",
      required: ["reason", "since", "storage_used_bytes", "storage_limit_bytes", "message"],
      properties: {
        reason: { type: "string", enum: ["storage_quota"] },
        since: { type: "string", format: "date-time" },
        storage_used_bytes: { type: "integer" },
        storage_limit_bytes: { type: ["integer", "null"] },
        message: { type: "string" },
      },
    },
    limits: { type: "array", items: limitViewSchema, description: "Every limit next to its current usage (info only)" },
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
  app.post<{ Body: { name: string; owner?: string; password?: string; suspend_after?: string; limits?: Record<string, unknown> } }>(
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
            limits: limitsInputSchema(false),
          },
        },
        response: {
          201: createdSchema,
          "4xx": errorSchema,
        },
      },
    },
    async (req, reply) => {
      const { name, owner, password, suspend_after, limits } = req.body;
      const result = await databases.create(name, { owner, password }, undefined, { suspendAfter: suspend_after, limits });
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
        summary: "Show a database, every limit next to its usage (with its DATABASE_URL when show_secrets=true)",
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
      const database = (await databases.withDatabases([await databases.detail(req.params.ref)], 5_000))[0] as DatabaseView;
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

  app.get<{ Params: { ref: string } }>(
    "/v1/databases/:ref/limits",
    {
      schema: {
        summary: "A database's limits next to their usage (a suspended database is not woken)",
        tags: ["databases"],
        params: refParams,
        response: { 200: { type: "object", required: ["limits"], properties: { limits: { type: "array", items: limitViewSchema } } }, "4xx": errorSchema },
      },
    },
    async (req) => ({ limits: (await databases.detail(req.params.ref)).limits ?? [] }),
  );

  app.patch<{ Params: { ref: string }; Body: { limits: Record<string, unknown>; restart?: boolean } }>(
    "/v1/databases/:ref/limits",
    {
      schema: {
        summary: "Change a database's limits: says which took effect now and which at the next start (restart=true: restart to apply all now)",
        tags: ["databases"],
        params: refParams,
        body: {
          type: "object",
          required: ["limits"],
          additionalProperties: false,
          properties: { limits: limitsInputSchema(true), restart: { type: "boolean", default: false } },
        },
        response: {
          200: {
            type: "object",
            required: ["database", "changed", "live", "next_start", "restarted", "settings_next_start"],
            properties: {
              database: databaseSchema,
              changed: { type: "array", items: { type: "string" }, description: "Limits whose value changed" },
              live: { type: "array", items: { type: "string" }, description: "Changes in force now" },
              next_start: { type: "array", items: { type: "string" }, description: "Changes that take effect at the next start (restart=true, a suspend and wake, or a ccpd restart)" },
              restarted: { type: "boolean" },
              settings_next_start: { type: "boolean", description: "Postgres settings that follow the limits (shared_buffers, max_connections, max_wal_size…) take effect at the next start" },
            },
          },
          "4xx": errorSchema,
        },
      },
    },
    async (req) => databases.setLimits(req.params.ref, req.body.limits, { restart: req.body.restart }),
  );
}
