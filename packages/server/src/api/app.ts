import cookie from "@fastify/cookie";
import swagger from "@fastify/swagger";
import { Ajv } from "ajv";
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from "fastify";
import type { DatabaseService } from "../databases/service.js";
import { CcpError, isCcpError, type ErrorCode } from "../errors.js";
import type { BackupService } from "../backups/service.js";
import type { BranchService } from "../branches/service.js";
import type { Gateway } from "../gateway/gateway.js";
import { neonRoutes } from "../gateway/neon.js";
import { observabilityRoutes } from "../observability/routes.js";
import type { Observability } from "../observability/service.js";
import { gatewayRoutes } from "../gateway/routes.js";
import { consoleSessionHook } from "../console/auth.js";
import { sessionRoutes } from "../console/routes.js";
import { SessionStore } from "../console/sessions.js";
import { serveConsole } from "../console/static.js";
import type { AdminAuth } from "./admin-auth.js";
import { DEFAULT_HTTP_LIMITS, httpServerOptions, limitPendingConnections, type HttpLimits } from "./http-limits.js";
import { databaseAdminRoutes } from "./routes/database-admin.js";
import { backupRoutes } from "./routes/backups.js";
import { branchRoutes } from "./routes/branches.js";
import { databaseSqlRoutes } from "./routes/database-sql.js";
import { serverRoutes } from "./routes/server.js";
import { databaseRoutes } from "./routes/databases.js";

export interface AppDeps {
  readonly databases: DatabaseService;
  readonly adminAuth: AdminAuth;
  readonly backups: BackupService;
  readonly branches: BranchService;
  readonly gateway: Gateway;
  /** /metrics, logs and insights (observability/); absent in apps built without them. */
  readonly observability?: Observability;
  /** Database hosts are `db-<hex>.<domain>`. */
  readonly domain: string;
  readonly version: string;
  readonly loggerInstance?: FastifyBaseLogger;
  /** Largest request body accepted, in bytes. */
  readonly bodyLimit?: number;
  /** Header, body and keep-alive timeouts; the bound on connections without a complete request. */
  readonly httpLimits?: HttpLimits;
  /** The built web console (packages/console/dist by default). */
  readonly consoleDir?: string;
  /** Console sign-ins (a fresh in-memory store by default). */
  readonly sessions?: SessionStore;
}

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: "invalid_request",
  401: "unauthorized",
  404: "not_found",
  413: "payload_too_large",
  415: "invalid_request",
};

/** Map any error to `{ error: { code, message, … } }`: the one place this happens. */
function toCcpError(err: FastifyError | Error): CcpError {
  if (isCcpError(err)) return err;
  const fe = err as FastifyError;
  if (fe.validation) {
    return new CcpError("invalid_request", `Invalid request: ${fe.message}`, { hint: "See the API description at /v1/openapi.json." });
  }
  const status = fe.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return new CcpError(CODE_BY_STATUS[status] ?? "invalid_request", fe.message);
  }
  return new CcpError("internal", "Internal error in ccpd; see its log for details.");
}

/**
 * Two validators. Query strings, path parameters and headers are text, so their
 * values are coerced to the schema's types (?show_secrets=true). JSON bodies
 * already carry types: `{"sql": ["select 1"]}` or `{"query": null}` is a wrong
 * type, never silently turned into a string. Neither drops unknown properties
 * (a typo in a field name is an error).
 */
const textValidator = new Ajv({ coerceTypes: "array", useDefaults: true, removeAdditional: false, allErrors: false, strict: false });
const bodyValidator = new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false, strict: false });

/** ccpd's HTTP app: the control-plane API, SQL over HTTP (ccp's and Neon's), /metrics and the web console. */
export async function createApp(deps: AppDeps): Promise<FastifyInstance> {
  const limits = deps.httpLimits ?? DEFAULT_HTTP_LIMITS;
  const app = Fastify({
    // Per-request lines are logged at info; ccpd's log keeps warnings and errors from the HTTP layer.
    ...(deps.loggerInstance ? { loggerInstance: deps.loggerInstance.child({}, { level: "warn" }) } : { logger: false }),
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
    // A request whose headers or body never arrive is closed (http-limits.ts); Fastify sets these two itself.
    http: httpServerOptions(limits),
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
  });
  limitPendingConnections(app.server, limits.maxPendingConnections);
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === "body" ? bodyValidator : textValidator).compile(schema));

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: { title: "ccp control plane", version: deps.version, description: "Create, list, inspect and destroy Postgres databases (admin key); run SQL over HTTP (database token)." },
      components: {
        securitySchemes: {
          adminKey: { type: "http", scheme: "bearer" },
          consoleSession: { type: "apiKey", in: "cookie", name: "ccp_session", description: "Web console sign-in (POST /v1/session); state-changing requests also need X-CSRF-Token" },
        },
      },
      security: [{ adminKey: [] }, { consoleSession: [] }],
    },
  });

  const obs = deps.observability;
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const mapped = toCcpError(err);
    if (mapped.status >= 500 && mapped.code !== "not_ready") req.log.error(err);
    if (mapped.code === "not_ready") void reply.header("retry-after", "1");
    void reply.code(mapped.status).send(mapped.toJSON());
  });
  await app.register(cookie);
  const sessions = deps.sessions ?? new SessionStore();
  app.addHook("onRequest", consoleSessionHook(deps.adminAuth, sessions));
  const consoleFallback = await serveConsole(app, deps.consoleDir);
  app.setNotFoundHandler((req, reply) => {
    if (consoleFallback(req, reply)) return;
    const e = new CcpError("not_found", `No route ${req.method} ${req.url}.`, { hint: "See /v1/openapi.json for the API." });
    if (obs?.enabled) obs.metrics.observeHttp(req.method, "unmatched", 404, reply.elapsedTime / 1000);
    void reply.code(404).send(e.toJSON());
  });

  if (obs?.enabled) {
    // Each route gets its own onResponse hook with its method and pattern bound, so the hot path's whole
    // cost is one observation: a count, a sum and a bucket, added by hand (observability/metrics.ts).
    app.addHook("onRoute", (route) => {
      const method = Array.isArray(route.method) ? route.method.join(",") : route.method;
      const hook = obs.metrics.httpObserver(method, route.url);
      const own = route.onResponse;
      route.onResponse = [...(own === undefined ? [] : Array.isArray(own) ? own : [own]), (_req, reply, done) => {
        hook(reply.statusCode, reply.elapsedTime / 1000);
        done();
      }];
    });
  }

  app.get("/v1/health", { schema: { hide: true } }, async () => ({ status: "ok", version: deps.version }));
  app.get("/v1/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  gatewayRoutes(app, deps.gateway, deps.domain);
  neonRoutes(app, deps.gateway, deps.domain);
  if (obs) observabilityRoutes(app, obs);

  await app.register(async (scope) => {
    scope.addHook("onRequest", async (req) => deps.adminAuth.check(req.headers.authorization));
    databaseRoutes(scope, deps.databases);
    serverRoutes(scope, deps.databases, deps.version);
    backupRoutes(scope, deps.backups);
    branchRoutes(scope, deps.branches);
    databaseAdminRoutes(scope, deps.databases);
    databaseSqlRoutes(scope, deps.databases, deps.gateway);
  });
  sessionRoutes(app, deps.adminAuth, sessions);

  return app;
}
