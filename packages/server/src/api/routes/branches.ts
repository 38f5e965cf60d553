import type { FastifyInstance } from "fastify";
import type { BranchInput, BranchService } from "../../branches/service.js";
import { errorSchema } from "../../errors.js";
import { createdSchema, databaseSchema, refParams } from "./databases.js";

const list = { type: "object", required: ["databases"], properties: { databases: { type: "array", items: databaseSchema } } } as const;

export function branchRoutes(app: FastifyInstance, branches: BranchService): void {
  app.post<{ Params: { ref: string }; Body: BranchInput }>(
    "/v1/databases/:ref/branches",
    {
      schema: {
        summary: "Create a branch: a new database holding this one's data at an instant (default now), with its own id, host, token and password",
        tags: ["branches"],
        params: refParams,
        body: {
          type: "object",
          required: ["name"],
          additionalProperties: false,
          properties: {
            name: { type: "string", description: "name of the new database" },
            at: { type: "string", description: "\"now\" (default), an RFC 3339 instant, or an LSN such as 0/3000060 (earlier instants come from backups + WAL)" },
            expires_at: { type: "string", description: "RFC 3339 instant at which ccpd destroys the branch" },
            ttl: { type: "string", description: "or a lifetime from now: 90s, 30m, 2h, 7d" },
          },
        },
        response: {
          201: createdSchema,
          "4xx": errorSchema,
        },
      },
    },
    async (req, reply) => reply.code(201).send(await branches.create(req.params.ref, req.body)),
  );
  app.get<{ Params: { ref: string } }>(
    "/v1/databases/:ref/branches",
    { schema: { summary: "List a database's branches", tags: ["branches"], params: refParams, response: { 200: list, "4xx": errorSchema } } },
    async (req) => ({ databases: await branches.list(req.params.ref) }),
  );
  app.get("/v1/branches", { schema: { summary: "List every branch", tags: ["branches"], response: { 200: list } } }, async () => ({ databases: await branches.list() }));
  app.post<{ Params: { ref: string } }>(
    "/v1/databases/:ref/reset-from-parent",
    {
      schema: {
        summary: "Replace a branch's data with its parent's current state (id, host, token and password stay; its own backups are dropped)",
        tags: ["branches"],
        params: refParams,
        response: { 200: { type: "object", required: ["database"], properties: { database: databaseSchema } }, "4xx": errorSchema },
      },
    },
    async (req) => ({ database: await branches.reset(req.params.ref) }),
  );
}
