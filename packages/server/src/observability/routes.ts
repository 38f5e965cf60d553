import type { FastifyInstance } from "fastify";
import { refParams } from "../api/routes/databases.js";
import { errorSchema } from "../errors.js";
import { INSIGHT_SORTS, type InsightSort } from "./insights.js";
import { follow, parseLevel, parseSince, type LogEntry } from "./logs.js";
import type { Observability } from "./service.js";

const logEntrySchema = {
  type: "object",
  required: ["time", "level", "source", "message"],
  properties: {
    time: { type: "string", format: "date-time" },
    level: { type: "string" },
    source: { type: "string", enum: ["postgres", "ccp"] },
    message: { type: "string" },
    database: { type: "string" },
    user: { type: "string" },
    code: { type: "string", description: "SQLSTATE" },
    detail: { type: "string" },
    hint: { type: "string" },
    statement: { type: "string", description: "The statement that failed (Postgres's log_min_error_statement)" },
    backend_type: { type: "string" },
    pid: { type: "integer" },
    event: { type: "string", description: "Platform event kind (source ccp)" },
  },
} as const;

const insightSchema = {
  type: "object",
  required: ["query", "database", "user", "calls", "total_ms", "mean_ms", "rows", "cache_hit_rate"],
  properties: {
    query: { type: "string", description: "Normalised statement text (constants as $1, $2, …)" },
    database: { type: "string" },
    user: { type: "string" },
    calls: { type: "number" },
    total_ms: { type: "number" },
    mean_ms: { type: "number" },
    rows: { type: "number" },
    cache_hit_rate: { type: ["number", "null"] },
  },
} as const;

/** GET /metrics, metrics tokens, and each database's logs and statement insights. */
export function observabilityRoutes(app: FastifyInstance, obs: Observability): void {
  // Open `logs?follow=true` streams: ended when ccpd closes, or they would hold its shutdown forever.
  const followers = new Set<AbortController>();
  app.addHook("preClose", (done) => {
    for (const f of followers) f.abort();
    done();
  });

  if (obs.enabled) {
    app.get(
      "/metrics",
      { schema: { summary: "Prometheus metrics of ccpd and every database (admin key or metrics token)", tags: ["observability"], response: { "4xx": errorSchema } } },
      async (req, reply) => {
        await obs.checkScraper(req.headers.authorization);
        const text = await obs.metrics.text();
        return reply.type(obs.metrics.contentType).send(text);
      },
    );
  }

  app.post(
    "/v1/metrics-tokens",
    {
      schema: {
        summary: "Issue a read-only token for GET /metrics (for a Prometheus scraper); shown only here",
        tags: ["observability"],
        response: { 201: { type: "object", required: ["token"], properties: { token: { type: "string" } } }, "4xx": errorSchema },
      },
    },
    async (req, reply) => {
      await obs.checkAdmin(req.headers.authorization);
      return reply.code(201).send({ token: await obs.issueMetricsToken() });
    },
  );

  app.get<{ Params: { ref: string }; Querystring: { since?: string; level?: string; limit?: number; follow?: boolean } }>(
    "/v1/databases/:ref/logs",
    {
      schema: {
        summary: "A database's Postgres log (JSON) and platform events, oldest first; follow=true streams NDJSON until the client goes away",
        tags: ["observability"],
        params: refParams,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            since: { type: "string", description: "A duration back from now (30s, 15m, 2h, 7d) or an RFC 3339 time; default 1h" },
            level: { type: "string", description: "Lowest level shown: debug, info, log, notice, warning, error, fatal, panic; default log" },
            limit: { type: "integer", minimum: 1, maximum: 10_000, default: 1000, description: "At most this many of the newest entries" },
            follow: { type: "boolean", default: false },
          },
        },
        response: { 200: { type: "object", required: ["entries"], properties: { entries: { type: "array", items: logEntrySchema } } }, "4xx": errorSchema },
      },
    },
    async (req, reply) => {
      const row = await obs.authorizeDatabase(req.params.ref, req.headers.authorization);
      const query = { since: parseSince(req.query.since ?? "1h"), level: parseLevel(req.query.level ?? "log"), limit: req.query.limit ?? 1000 };
      const reader = obs.logReader(row, query);
      const entries = await reader.initial();
      if (!req.query.follow) return { entries };
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { "content-type": "application/x-ndjson; charset=utf-8", "cache-control": "no-store" });
      res.flushHeaders(); // the client learns the stream is open now, not with the first entry
      const write = (batch: LogEntry[]) => res.write(batch.map((e) => `${JSON.stringify(e)}\n`).join(""));
      if (entries.length > 0) write(entries);
      const stop = new AbortController();
      followers.add(stop);
      res.once("close", () => stop.abort());
      try {
        await follow(reader, stop.signal, write);
      } catch (err) {
        req.log.warn(`following the log of ${row.id} stopped: ${(err as Error).message}`);
      } finally {
        followers.delete(stop);
      }
      res.end();
    },
  );

  app.get<{ Params: { ref: string }; Querystring: { sort: InsightSort; limit: number } }>(
    "/v1/databases/:ref/insights",
    {
      schema: {
        summary: "Statement statistics of a database (pg_stat_statements): total and mean time, calls, rows, cache hit rate",
        tags: ["observability"],
        params: refParams,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            sort: { type: "string", enum: [...INSIGHT_SORTS], default: "total", description: "total time, mean time or calls, highest first" },
            limit: { type: "integer", minimum: 1, maximum: 1000, default: 20 },
          },
        },
        response: { 200: { type: "object", required: ["statements"], properties: { statements: { type: "array", items: insightSchema } } }, "4xx": errorSchema },
      },
    },
    async (req) => {
      const row = await obs.authorizeDatabase(req.params.ref, req.headers.authorization);
      return { statements: await obs.insights(row, req.query.sort, req.query.limit) };
    },
  );

  app.post<{ Params: { ref: string } }>(
    "/v1/databases/:ref/insights/reset",
    {
      schema: {
        summary: "Start a database's statement statistics afresh",
        tags: ["observability"],
        params: refParams,
        response: { 200: { type: "object", required: ["reset"], properties: { reset: { type: "boolean" } } }, "4xx": errorSchema },
      },
    },
    async (req) => {
      const row = await obs.authorizeDatabase(req.params.ref, req.headers.authorization);
      await obs.resetInsights(row);
      return { reset: true };
    },
  );
}
