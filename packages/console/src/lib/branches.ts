/** Front-end rules of the branches panel: what the form sends, and how a branch is described. */

export type AtMode = "now" | "time" | "lsn";
export type ExpiryMode = "none" | "ttl" | "expires_at";

export interface BranchBody {
  name: string;
  at?: string;
  ttl?: string;
  expires_at?: string;
}

const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
const TTL = /^[1-9][0-9]*(s|m|h|d)$/;

/** A <input type="datetime-local"> value (local wall time, no zone) as an RFC 3339 instant in UTC; undefined when it is not one. */
export function localToRfc3339(local: string): string | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(local)) return undefined;
  const d = new Date(local); // no zone: the browser's local time, as the picker showed it
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/**
 * The create-branch request of the form's fields, or an error message that says
 * what to fix. `at` is left out for "now" (the server's default).
 */
export function branchBody(f: { name: string; atMode: AtMode; at: string; expiryMode: ExpiryMode; expiry: string }): BranchBody | { error: string } {
  const name = f.name.trim();
  if (name === "") return { error: "Give the branch a name (3–32 of a–z, 0–9, - and _, starting with a letter)." };
  const body: BranchBody = { name };
  if (f.atMode === "time") {
    const at = localToRfc3339(f.at.trim());
    if (!at) return { error: "Pick the instant to branch at (date and time), or branch from now." };
    body.at = at;
  } else if (f.atMode === "lsn") {
    const lsn = f.at.trim();
    if (!LSN.test(lsn)) return { error: `"${lsn}" is not an LSN: write it like 0/3000060 (two hex numbers, as pg_current_wal_lsn() shows).` };
    body.at = lsn.toUpperCase();
  }
  if (f.expiryMode === "ttl") {
    const ttl = f.expiry.trim();
    if (!TTL.test(ttl)) return { error: `"${ttl}" is not a lifetime: write a number and a unit, like 90s, 30m, 2h or 7d.` };
    body.ttl = ttl;
  } else if (f.expiryMode === "expires_at") {
    const at = localToRfc3339(f.expiry.trim());
    if (!at) return { error: "Pick when the branch expires (date and time), or choose no expiry." };
    body.expires_at = at;
  }
  return body;
}

interface Named {
  id: string;
  name: string;
  parent_id?: string;
}

/** The databases of `list` branched from `id`. */
export function branchesOf<T extends Named>(list: readonly T[], id: string): T[] {
  return list.filter((d) => d.parent_id === id);
}

/** "branch of shop" (or of the parent's id when it is gone or not in the list); undefined for a database that is no branch. */
export function branchOfLabel(db: Named, list: readonly Named[]): string | undefined {
  if (!db.parent_id) return undefined;
  const parent = list.find((d) => d.id === db.parent_id);
  return `branch of ${parent ? parent.name : db.parent_id}`;
}

/** The branch names a destroy's 409 carried (ids in `branches`), named from the list where known. */
export function branchesFromConflict(body: Record<string, unknown>, list: readonly Named[]): string[] {
  const ids = Array.isArray(body["branches"]) ? body["branches"].filter((x): x is string => typeof x === "string") : [];
  return ids.map((id) => list.find((d) => d.id === id)?.name ?? id);
}
