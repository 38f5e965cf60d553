import { randomBytes, timingSafeEqual } from "node:crypto";

/** The console's session cookie: an opaque id; everything else stays in ccpd's memory. */
export const SESSION_COOKIE = "ccp_session";
/** The double-submit header a cookie-authenticated state-changing request must carry. */
export const CSRF_HEADER = "x-csrf-token";
export const DEFAULT_SESSION_TTL_MS = 12 * 60 * 60 * 1000;

export interface ConsoleSession {
  readonly id: string;
  readonly csrfToken: string;
  readonly expiresAt: number;
}

/**
 * Sign-ins of the web console, kept in memory: a restart of ccpd signs everyone
 * out, which is the safe failure. The id is 256 random bits, so it is both the
 * lookup key and the secret; ids are never logged.
 */
export class SessionStore {
  readonly #sessions = new Map<string, ConsoleSession>();
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(options: { ttlMs?: number; now?: () => number } = {}) {
    this.#ttlMs = options.ttlMs ?? DEFAULT_SESSION_TTL_MS;
    this.#now = options.now ?? Date.now;
  }

  create(): ConsoleSession {
    this.#sweep();
    const session = { id: randomBytes(32).toString("base64url"), csrfToken: randomBytes(32).toString("base64url"), expiresAt: this.#now() + this.#ttlMs };
    this.#sessions.set(session.id, session);
    return session;
  }

  /** The live session with this id, or undefined (unknown or expired). */
  get(id: string | undefined): ConsoleSession | undefined {
    if (!id) return undefined;
    const s = this.#sessions.get(id);
    if (!s) return undefined;
    if (s.expiresAt <= this.#now()) {
      this.#sessions.delete(id);
      return undefined;
    }
    return s;
  }

  delete(id: string): void {
    this.#sessions.delete(id);
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [id, s] of this.#sessions) if (s.expiresAt <= now) this.#sessions.delete(id);
  }
}

/** Constant-time comparison of the presented CSRF token with the session's. */
export function csrfMatches(session: ConsoleSession, presented: string | undefined): boolean {
  if (!presented) return false;
  const a = Buffer.from(session.csrfToken);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}
