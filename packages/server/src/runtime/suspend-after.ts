import { CcpError } from "../errors.js";

/**
 * Suspend timeouts as people write them: `30s`, `5m`, `2h`, `1d` (also `ms`),
 * or `never`. Light on imports: the CLI checks flags with it before contacting ccpd.
 */
const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A suspend timeout: `30s`, `5m`, `2h`, `1d` (also `ms`), or `never` (null).
 * Throws a CcpError (400) on anything else.
 */
export function parseSuspendAfter(input: unknown): number | null {
  const text = typeof input === "string" ? input.trim().toLowerCase() : "";
  if (text === "never") return null;
  const m = DURATION.exec(text);
  const ms = m ? Number(m[1]) * (UNIT_MS[m[2] as string] as number) : NaN;
  if (!Number.isSafeInteger(ms) || ms < 1_000) {
    throw new CcpError("invalid_request", `Invalid suspend timeout "${String(input)}": use a duration of at least 1s such as 30s, 5m, 2h, or "never".`, {
      hint: "Units: s, m, h, d.",
    });
  }
  return ms;
}

/** `300000` → `5m`; null → `never`. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return "never";
  for (const unit of ["d", "h", "m", "s"] as const) {
    const u = UNIT_MS[unit] as number;
    if (ms % u === 0) return `${ms / u}${unit}`;
  }
  return `${ms}ms`;
}
