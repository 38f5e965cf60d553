import type { FastifyInstance } from "fastify";
import type { DatabaseService } from "../../databases/service.js";
import { errorSchema } from "../../errors.js";
import { databaseSchema, refParams } from "./databases.js";

const nullable = (type: string) => ({ type: [type, "null"] }) as const;

const statusSchema = {
  type: "object",
  required: ["id", "name", "state", "host", "owner", "pg_version", "size_bytes", "connections", "started_at", "uptime_seconds", "last_backup_at", "databases"],
  properties: {
    id: { type: "string" },
    name: { type: "string" },
    state: { type: "string" },
    host: { type: "string" },
    owner: { type: "string", description: "The owner (tenant) role" },
    pg_version: { type: "string" },
    size_bytes: { ...nullable("integer"), description: "Sum of pg_database_size over the instance's databases; null while not running" },
    connections: { ...nullable("integer"), description: "Tenant client sessions (ccp's own admin and gateway-pool sessions not counted)" },
    max_connections: nullable("integer"),
    started_at: { ...nullable("string"), description: "pg_postmaster_start_time()" },
    uptime_seconds: nullable("integer"),
    last_backup_at: { ...nullable("string"), description: "Newest backup, or null when there is none" },
    databases: { type: ["array", "null"], items: { type: "string" } },
    tps: { ...nullable("number"), description: "Commits + rollbacks per second over the last minute (or what ccpd has seen of it)" },
    cache_hit_rate: { ...nullable("number"), description: "Share of block reads served from shared buffers (0–1)" },
    size_limit_bytes: { ...nullable("integer"), description: "Storage limit; null when the database has none" },
    wal_archive_lag_bytes: { ...nullable("number"), description: "WAL written but not yet in the backup store" },
    last_archived_age_seconds: { ...nullable("integer"), description: "Seconds since the last WAL segment reached the backup store" },
    suspend_after: { type: "string", description: "Idle time after which it is suspended, or never" },
    last_active_at: { type: ["string", "null"], description: "Last request, session end, wake or start seen" },
  },
} as const;

/** Admin operations on one database: status, wire password, HTTP token. */
export function databaseAdminRoutes(app: FastifyInstance, databases: DatabaseService): void {
  app.get<{ Params: { ref: string } }>(
    "/v1/databases/:ref/status",
    {
      schema: {
        summary: "State, Postgres version, size, connections, uptime and last backup of a database",
        tags: ["databases"],
        params: refParams,
        response: { 200: { type: "object", required: ["status"], properties: { status: statusSchema } }, "4xx": errorSchema },
      },
    },
    async (req) => ({ status: await databases.status(req.params.ref) }),
  );

  app.post<{ Params: { ref: string }; Body: { password: string } }>(
    "/v1/databases/:ref/password",
    {
      schema: {
        summary: "Set a new wire password for the owner role (open sessions stay; new ones need it)",
        tags: ["databases"],
        params: refParams,
        body: {
          type: "object",
          required: ["password"],
          additionalProperties: false,
          properties: { password: { type: "string", description: "8 or more characters" } },
        },
        response: {
          200: {
            type: "object",
            required: ["database", "database_url"],
            properties: { database: databaseSchema, database_url: { type: "string", description: "DATABASE_URL with the new password" } },
          },
          "4xx": errorSchema,
        },
      },
    },
    async (req) => databases.resetPassword(req.params.ref, req.body.password),
  );

  app.post<{ Params: { ref: string } }>(
    "/v1/databases/:ref/token",
    {
      schema: {
        summary: "Issue a new HTTP token; the previous one stops working at once",
        tags: ["databases"],
        params: refParams,
        response: {
          200: {
            type: "object",
            required: ["database", "token"],
            properties: { database: databaseSchema, token: { type: "string", description: "The new HTTP token; shown only here" } },
          },
          "4xx": errorSchema,
        },
      },
    },
    async (req) => databases.rotateToken(req.params.ref),
  );
}
