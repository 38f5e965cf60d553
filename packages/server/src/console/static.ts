import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/** packages/console/dist, built by `npm install` (the root `build` script), from src/ or dist/ alike. */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL("../../../console/dist/", import.meta.url));

/** The console's own code only: no inline script, no other origin, no framing. */
const HTML_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

/**
 * Serve the built console at `/`. Returns the fallback for unknown routes: a
 * browser's GET of a console path (`/databases/x/sql`) gets index.html, anything
 * else (the API, SQL endpoints, non-HTML clients) keeps its JSON 404.
 */
export async function serveConsole(app: FastifyInstance, dir: string = DEFAULT_CONSOLE_DIR): Promise<(req: FastifyRequest, reply: FastifyReply) => boolean> {
  const index = path.join(dir, "index.html");
  if (!existsSync(index)) {
    app.get("/", { schema: { hide: true } }, async (_req, reply) =>
      reply
        .code(503)
        .type("text/plain; charset=utf-8")
        .send(`The ccp console is not built (no ${index}).\nRun \`npm run build\` in the ccp repository, then restart ccpd.\n`),
    );
    return () => false;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: "/",
    wildcard: false,
    index: ["index.html"],
    cacheControl: false,
    setHeaders: (res, file) => {
      if (file.endsWith(".html")) for (const [k, v] of Object.entries(HTML_HEADERS)) res.setHeader(k, v);
      // Vite puts a content hash in every asset's name.
      else if (file.includes(`${path.sep}assets${path.sep}`)) res.setHeader("cache-control", "public, max-age=31536000, immutable");
      else res.setHeader("cache-control", "no-cache");
    },
    schemaHide: true,
  });
  return (req, reply) => {
    const p = req.url.split("?")[0] ?? "";
    if ((req.method !== "GET" && req.method !== "HEAD") || p.startsWith("/v1/") || !(req.headers.accept ?? "").includes("text/html")) return false;
    void reply.sendFile("index.html");
    return true;
  };
}
