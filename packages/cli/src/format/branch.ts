import type { DatabaseView } from "@ccp/server/client-side";

/** `2026-04-12T14:22:05.123Z` → `2026-04-12 14:22:05 UTC`. */
export function branchTime(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

/** "branch of <parent>[ at …][ · expires …]" for list and info. */
export function branchSummary(d: DatabaseView, names: ReadonlyMap<string, string> = new Map()): string | undefined {
  const parts: string[] = [];
  if (d.parent_id) parts.push(`branch of ${names.get(d.parent_id) ?? d.parent_id}${d.branched_at ? ` at ${branchTime(d.branched_at)}` : ""}`);
  if (d.expires_at) parts.push(`expires ${branchTime(d.expires_at)}`);
  return parts.length ? parts.join(" · ") : undefined;
}
