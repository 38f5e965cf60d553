import type { DatabaseView } from "@ccp/server/client-side";
import type { ApiClient } from "../../api.js";
import { CliError, EXIT, usageError } from "../../errors.js";
import type { Output } from "../../output.js";
import { PROJECT_CONFIG } from "../../project-config.js";
import { confirm } from "../../prompt.js";
import { getDatabase } from "./info.js";

export interface BranchOptions {
  /** "now", an RFC 3339 instant or an LSN (ccpd checks it). */
  readonly at?: string;
  readonly expiresAt?: string;
  readonly ttl?: string;
}

export interface CreatedBranch {
  readonly parent: DatabaseView;
  readonly database: DatabaseView;
  readonly token: string;
  readonly password: string;
  readonly databaseUrl: string;
}

const branchesPath = (ref: string) => `/v1/databases/${encodeURIComponent(ref)}/branches`;

/**
 * `ccp db branch create <parent> --name <new> [--at …] [--expires-at … | --ttl …]`:
 * a new database holding the parent's data at that instant (default now). Like
 * `ccp db restore`, the project's .cluster/config.json is left alone.
 */
export async function createBranch(api: ApiClient, parentRef: string, name: string, options: BranchOptions = {}): Promise<CreatedBranch> {
  if (options.expiresAt !== undefined && options.ttl !== undefined) throw usageError("--expires-at and --ttl do not go together.", "Pass one of them.");
  const parent = await getDatabase(api, parentRef);
  const r = await api.request<{ database: DatabaseView; token: string; password: string; database_url: string }>("POST", branchesPath(parent.id), {
    name,
    ...(options.at === undefined ? {} : { at: options.at }),
    ...(options.expiresAt === undefined ? {} : { expires_at: options.expiresAt }),
    ...(options.ttl === undefined ? {} : { ttl: options.ttl }),
  });
  return { parent, database: r.database, token: r.token, password: r.password, databaseUrl: r.database_url };
}

/** `ccp db branch list [<parent>]`: one database's branches, or every branch. */
export async function listBranches(api: ApiClient, parentRef?: string): Promise<{ parent?: DatabaseView; branches: DatabaseView[] }> {
  if (parentRef === undefined) return { branches: (await api.request<{ databases: DatabaseView[] }>("GET", "/v1/branches")).databases };
  const parent = await getDatabase(api, parentRef);
  return { parent, branches: (await api.request<{ databases: DatabaseView[] }>("GET", branchesPath(parent.id))).databases };
}

/**
 * `ccp db branch reset <branch>`: replace the branch's data with its parent's
 * current state; id, host, token and password stay. Asks first unless `yes`.
 */
export async function resetBranch(api: ApiClient, ref: string, options: { yes: boolean; ask?: (q: string) => Promise<boolean> }): Promise<DatabaseView> {
  const branch = await getDatabase(api, ref);
  if (!branch.parent_id) {
    throw new CliError("invalid_request", `Database ${branch.id} (${branch.name}) is not a branch, or its parent was destroyed: there is nothing to reset it to.`, {
      hint: "See branches with `ccp db branch list`.",
    });
  }
  if (!options.yes) {
    const ask = options.ask ?? confirm;
    if (!(await ask(`Reset branch ${branch.id} (${branch.name}) to the current state of ${branch.parent_id}? Its data, backups and writes since it was made are replaced.`))) {
      throw new CliError("declined", `Not reset: branch ${branch.id} is unchanged.`, { exitCode: EXIT.declined });
    }
  }
  return (await api.request<{ database: DatabaseView }>("POST", `/v1/databases/${branch.id}/reset-from-parent`)).database;
}

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

export function printBranchCreated(out: Output, r: CreatedBranch): void {
  if (out.json) return out.data({ parent: r.parent, database: r.database, token: r.token, password: r.password, database_url: r.databaseUrl });
  const at = r.database.branched_at ? branchTime(r.database.branched_at) : r.database.branch_lsn ?? "now";
  out.success(`Branched ${r.parent.name} (${r.parent.id}) at ${at} as new database ${out.style("bold", r.database.name)}`);
  out.line();
  const rows: [string, string][] = [
    ["ID", r.database.id],
    ["Host", r.database.host],
    ["Token", r.token],
    ["DATABASE_URL", r.databaseUrl],
  ];
  if (r.database.expires_at) rows.push(["Expires", branchTime(r.database.expires_at)]);
  out.fields(rows);
  out.line();
  out.note(`Save the token and DATABASE_URL now: they are not shown again, and ${PROJECT_CONFIG} was left unchanged.`);
  out.note(`Work on the branch with \`ccp db use ${r.database.name}\`; bring it up to date with \`ccp db branch reset ${r.database.name}\`.`);
}

export function printBranchList(out: Output, r: { parent?: DatabaseView; branches: DatabaseView[] }): void {
  if (out.json) return out.data({ databases: r.branches });
  if (r.branches.length === 0) {
    out.note(`No branches${r.parent ? ` of ${r.parent.name}` : ""}. Make one with \`ccp db branch create ${r.parent?.name ?? "<parent>"} --name <new>\`.`);
    return;
  }
  const names = new Map(r.parent ? [[r.parent.id, r.parent.name]] : []);
  const nameWidth = Math.max(...r.branches.map((d) => d.name.length));
  for (const d of r.branches) {
    out.line(`${out.style("dim", "•")} ${out.style("bold", d.name.padEnd(nameWidth))}  ${d.id}  ${d.status}`);
    out.line(`  ${out.style("dim", branchSummary(d, names) ?? "")}`);
  }
}

export function printBranchReset(out: Output, d: DatabaseView): void {
  if (out.json) return out.data({ database: d });
  out.success(`Reset branch ${out.style("bold", d.name)} (${d.id}) to ${d.parent_id}${d.branched_at ? ` as of ${branchTime(d.branched_at)}` : ""}; token and password unchanged`);
}
