import type { FastifyInstance } from "fastify";
import type { DatabaseService } from "../../databases/service.js";
import { errorSchema } from "../../errors.js";

/** `GET /v1/server` (`ccp server status`): version, runtime, default limits and the isolation in force. */
export function serverRoutes(app: FastifyInstance, databases: DatabaseService, version: string): void {
  app.get(
    "/v1/server",
    {
      schema: {
        summary: "ccpd's version, runtime driver, default limits and which isolation is in force on this host (and why not)",
        tags: ["server"],
        response: {
          200: {
            type: "object",
            required: ["version", "runtime", "default_limits", "isolation"],
            properties: {
              version: { type: "string" },
              runtime: { type: "string" },
              default_limits: {
                type: "object",
                description: "Limits of databases without their own; absent: unlimited",
                properties: {
                  memory: { type: "integer" },
                  cpu: { type: "number" },
                  storage: { type: "integer" },
                  connections: { type: "integer" },
                  pids: { type: "integer" },
                  io: { type: "integer" },
                },
              },
              isolation: {
                type: "array",
                items: {
                  type: "object",
                  required: ["name", "enforced", "detail"],
                  properties: { name: { type: "string" }, enforced: { type: "boolean" }, detail: { type: "string" } },
                },
              },
            },
          },
          "4xx": errorSchema,
        },
      },
    },
    async () => databases.serverReport(version),
  );
}
