import { CcpError } from "../errors.js";

/**
 * The parameters of `ccp db logs` and `ccp db insights`, checked the same way
 * by ccpd and, before it is contacted, by the CLI (client-side.ts: nothing
 * heavy is imported here).
 */
export const LOG_LEVELS = ["debug", "info", "log", "notice", "warning", "error", "fatal", "panic"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function parseLevel(input: unknown): LogLevel {
  const s = String(input).toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(s)) return s as LogLevel;
  throw new CcpError("invalid_request", `Unknown log level "${String(input)}".`, { hint: `Use one of: ${LOG_LEVELS.join(", ")} (that level and above are shown).` });
}

const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `15m`, `2h`, `30s`, `7d` before `now`, or an RFC 3339 instant. */
export function parseSince(input: unknown, now = Date.now()): Date {
  const s = String(input).trim();
  const m = DURATION.exec(s);
  if (m) return new Date(now - Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]);
  if (/^\d{4}-\d\d-\d\dT/.test(s)) {
    const t = Date.parse(s);
    if (Number.isFinite(t)) return new Date(t);
  }
  throw new CcpError("invalid_request", `Cannot read "${s}" as a time.`, { hint: "Use a duration such as 30s, 15m, 2h or 7d, or an RFC 3339 time like 2026-04-12T14:22:00Z." });
}


export const INSIGHT_SORTS = ["total", "mean", "calls"] as const;
export type InsightSort = (typeof INSIGHT_SORTS)[number];
