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
 * Who may use the `/v1` admin API: a request with `Authorization: Bearer <admin key>`
 * (the CLI, scripts; no CSRF token, a browser never adds that header by itself), or the
 * console's session cookie, where every state-changing request must also carry the
 * session's CSRF token in `X-CSRF-Token` (double submit, matched server-side).
 */
export async function authenticateAdmin(req: FastifyRequest, adminAuth: AdminAuth, sessions: SessionStore): Promise<void> {
  if (req.headers.authorization !== undefined || req.cookies[SESSION_COOKIE] === undefined) {
    await adminAuth.check(req.headers.authorization);
    return;
  }
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
}
