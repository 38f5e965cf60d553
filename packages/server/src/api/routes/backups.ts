import type { FastifyInstance } from "fastify";
import type { BackupService } from "../../backups/service.js";
import { errorSchema } from "../../errors.js";

const backupSchema = {
  type: "object",
  required: ["id", "database_id", "kind", "status", "created_at"],
  properties: {
    id: { type: "string", pattern: "^bkp-[0-9a-f]{8}$" },
    database_id: { type: "string" },
    kind: { type: "string", enum: ["manual", "scheduled"] },
    status: { type: "string" },
    created_at: { type: "string", format: "date-time" },
    finished_at: { type: ["string", "null"], format: "date-time" },
    size_bytes: { type: ["integer", "null"] },
  },
} as const;

const one = { type: "object", required: ["backup"], properties: { backup: backupSchema } } as const;
const refParams = { type: "object", required: ["ref"], properties: { ref: { type: "string" } } } as const;
const backupParams = { type: "object", required: ["ref", "backup"], properties: { ref: { type: "string" }, backup: { type: "string" } } } as const;

export function backupRoutes(app: FastifyInstance, backups: BackupService): void {
  app.post<{ Params: { ref: string }; Body: { time: string; name: string } }>(
    "/v1/databases/:ref/restore",
    {
      schema: {
        summary: "Point-in-time restore into a NEW database (the source is untouched)",
        tags: ["backups"],
        params: refParams,
        body: {
          type: "object",
          required: ["time", "name"],
          additionalProperties: false,
          properties: { time: { type: "string", description: "RFC 3339 instant" }, name: { type: "string", description: "name of the new database" } },
        },
        response: { "4xx": errorSchema },
      },
    },
    async (req, reply) => reply.code(201).send(await backups.restoreToPointInTime(req.params.ref, req.body.time, req.body.name)),
  );
  app.post<{ Params: { ref: string } }>(
    "/v1/databases/:ref/backups",
    { schema: { summary: "Take a manual base backup now", tags: ["backups"], params: refParams, response: { 201: one, "4xx": errorSchema } } },
    async (req, reply) => reply.code(201).send({ backup: await backups.create(req.params.ref, "manual") }),
  );
  app.get<{ Params: { ref: string } }>(
    "/v1/databases/:ref/backups",
    {
      schema: {
        summary: "List a database's backups, newest first",
        tags: ["backups"],
        params: refParams,
        response: { 200: { type: "object", required: ["backups"], properties: { backups: { type: "array", items: backupSchema } } }, "4xx": errorSchema },
      },
    },
    async (req) => ({ backups: await backups.list(req.params.ref) }),
  );
  app.delete<{ Params: { ref: string; backup: string } }>(
    "/v1/databases/:ref/backups/:backup",
    { schema: { summary: "Delete a backup", tags: ["backups"], params: backupParams, response: { 200: one, "4xx": errorSchema } } },
    async (req) => ({ backup: await backups.delete(req.params.ref, req.params.backup) }),
  );
  app.post<{ Params: { ref: string; backup: string } }>(
    "/v1/databases/:ref/backups/:backup/restore",
    {
      schema: {
        summary: "Replace the database's data with this backup's (id, host and token stay)",
        tags: ["backups"],
        params: backupParams,
        response: { 200: one, "4xx": errorSchema },
      },
    },
    async (req) => ({ backup: await backups.restoreInPlace(req.params.ref, req.params.backup) }),
  );
  app.get<{ Params: { ref: string; backup: string } }>(
    "/v1/databases/:ref/backups/:backup/archive",
    {
      schema: {
        summary: "Download the backup as one tar archive that plain PostgreSQL of the same major version starts from (data files checked against the manifest as they stream; a mismatch cuts the response)",
        tags: ["backups"],
        params: backupParams,
        response: { 200: { type: "string", format: "binary", description: "application/x-tar" }, "4xx": errorSchema },
      },
    },
    async (req, reply) => {
      const { backup, stream } = await backups.download(req.params.ref, req.params.backup);
      stream.on("error", (err) => req.log.warn(`download of ${backup.id} cut: ${err.message}`));
      return reply.header("content-type", "application/x-tar").header("content-disposition", `attachment; filename="${backup.id}.tar"`).send(stream);
    },
  );
  app.post<{ Params: { ref: string; backup: string } }>(
    "/v1/databases/:ref/backups/:backup/verify",
    {
      schema: {
        summary: "Restore into a scratch instance, check every file and that Postgres answers, then remove it",
        tags: ["backups"],
        params: backupParams,
        response: {
          200: { type: "object", required: ["backup", "files", "bytes"], properties: { backup: backupSchema, files: { type: "integer" }, bytes: { type: "integer" } } },
          "4xx": errorSchema,
        },
      },
    },
    async (req) => backups.verify(req.params.ref, req.params.backup),
  );
}
