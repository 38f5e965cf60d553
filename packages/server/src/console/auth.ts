import { randomBytes } from "node:crypto";
import type { FastifyRequest } from "fastify";
import type { AdminAuth } from "../api/admin-auth.js";
import { CcpError } from "../errors.js";
import { CSRF_HEADER, csrfMatches, SESSION_COOKIE, type ConsoleSession, type SessionStore } from "./sessions.js";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The console session a request's cookie names, if it is live. */
export function sessionOf(req: FastifyRequest, sessions: SessionStore): ConsoleSession | undefined {
  return sessions.get(req.cookies[SESSION_COOKIE]);
}

/**
 * An onRequest hook that lets the console's session cookie stand for the admin
 * key on the API (`/v1/…` and `/metrics`), so every admin route — this package's
 * and observability's alike — keeps one check, `AdminAuth.check(header)`:
 *
 * - a request with an Authorization header is left alone (CLI, scripts; no CSRF
 *   token needed, a browser never adds that header by itself);
 * - with the cookie of a live session, a state-changing request must carry the
 *   session's CSRF token in `X-CSRF-Token` (double submit, matched server-side),
 *   then the request goes on with a key that only this process knows;
 * - a cookie of no live session is a 401 that says to sign in again.
 */
export function consoleSessionHook(adminAuth: AdminAuth, sessions: SessionStore): (req: FastifyRequest) => Promise<void> {
  const processKey = randomBytes(32).toString("base64url");
  adminAuth.allowProcessKey(processKey);
  return async (req) => {
    if (req.headers.authorization !== undefined || req.cookies[SESSION_COOKIE] === undefined) return;
    const path = req.url.split("?")[0] ?? "";
    if (!(path.startsWith("/v1/") || path === "/metrics") || path === "/v1/session") return;
    const session = sessionOf(req, sessions);
    if (!session) {
      throw new CcpError("unauthorized", "Your console session has ended or is not valid.", { hint: "Sign in again with the admin API key." });
    }
    if (!SAFE_METHODS.has(req.method)) {
      const header = req.headers[CSRF_HEADER];
      if (!csrfMatches(session, typeof header === "string" ? header : undefined)) {
        throw new CcpError("forbidden", "Missing or wrong CSRF token for a request authenticated by the console's session cookie.", {
          hint: `Send the csrf_token returned by POST /v1/session (or GET /v1/session) in the ${CSRF_HEADER} header, or use Authorization: Bearer <admin key>.`,
        });
      }
    }
    req.headers.authorization = `Bearer ${processKey}`;
  };
}
