import type { FastifyInstance, FastifyReply } from "fastify";
import type { AdminAuth } from "../api/admin-auth.js";
import { CcpError, errorSchema } from "../errors.js";
import { sessionOf } from "./auth.js";
import { CSRF_HEADER, csrfMatches, SESSION_COOKIE, type ConsoleSession, type SessionStore } from "./sessions.js";

const sessionSchema = {
  type: "object",
  required: ["csrf_token", "expires_at"],
  properties: {
    csrf_token: { type: "string", description: `Send it as ${CSRF_HEADER} with every state-changing request made with the session cookie` },
    expires_at: { type: "string", format: "date-time" },
  },
} as const;

const view = (s: ConsoleSession) => ({ csrf_token: s.csrfToken, expires_at: new Date(s.expiresAt).toISOString() });

/** Sign-in and sign-out of the web console (a cookie session instead of the Bearer key). */
export function sessionRoutes(app: FastifyInstance, adminAuth: AdminAuth, sessions: SessionStore): void {
  const cookieOptions = (secure: boolean) => ({ path: "/", httpOnly: true, sameSite: "strict" as const, secure });

  app.post<{ Body: { key: string } }>(
    "/v1/session",
    {
      schema: {
        summary: "Sign in to the web console with the admin API key: sets an HttpOnly, SameSite=Strict session cookie",
        tags: ["console"],
        security: [],
        body: { type: "object", required: ["key"], additionalProperties: false, properties: { key: { type: "string", minLength: 1, description: "The admin API key" } } },
        response: { 201: sessionSchema, "4xx": errorSchema },
      },
    },
    async (req, reply) => {
      try {
        await adminAuth.check(`Bearer ${req.body.key.trim()}`);
      } catch (err) {
        if (err instanceof CcpError && err.code === "unauthorized") {
          throw new CcpError("unauthorized", "That is not an admin API key of this ccpd.", {
            hint: "ccpd saved its key on its first start in $XDG_CONFIG_HOME/ccp/config.json (usually ~/.config/ccp/config.json), field \"token\".",
          });
        }
        throw err;
      }
      const old = sessionOf(req, sessions);
      if (old) sessions.delete(old.id);
      const session = sessions.create();
      void reply.setCookie(SESSION_COOKIE, session.id, { ...cookieOptions(req.protocol === "https"), maxAge: Math.floor(sessions.ttlMs / 1000) });
      return reply.code(201).send(view(session));
    },
  );

  app.get(
    "/v1/session",
    { schema: { summary: "The console session of this cookie (its CSRF token, after a page reload)", tags: ["console"], security: [], response: { 200: sessionSchema, "4xx": errorSchema } } },
    async (req) => {
      const session = sessionOf(req, sessions);
      if (!session) throw new CcpError("unauthorized", "Not signed in to the console.", { hint: "Sign in with the admin API key (POST /v1/session)." });
      return view(session);
    },
  );

  app.delete(
    "/v1/session",
    {
      schema: {
        summary: "Sign out of the web console (needs the X-CSRF-Token header)",
        tags: ["console"],
        security: [],
        response: { 200: { type: "object", required: ["signed_out"], properties: { signed_out: { type: "boolean" } } }, "4xx": errorSchema },
      },
    },
    async (req, reply: FastifyReply) => {
      const session = sessionOf(req, sessions);
      if (session) {
        const header = req.headers[CSRF_HEADER];
        if (!csrfMatches(session, typeof header === "string" ? header : undefined)) {
          throw new CcpError("forbidden", "Missing or wrong CSRF token.", { hint: `Send the session's csrf_token in the ${CSRF_HEADER} header.` });
        }
        sessions.delete(session.id);
      }
      void reply.clearCookie(SESSION_COOKIE, cookieOptions(req.protocol === "https"));
      return { signed_out: session !== undefined };
    },
  );
}
