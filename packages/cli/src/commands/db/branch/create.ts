import { validateDatabaseName, type DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../../api.js";
import { getDatabase } from "../../../databases.js";
import { usageError } from "../../../errors.js";
import { branchTime } from "../../../format/branch.js";
import { jsonOption } from "../../../options.js";
import { Output } from "../../../output.js";
import { PROJECT_CONFIG } from "../../../project-config.js";

export function register(branch: Command): Command {
  return branch
    .command("create")
    .description("create a branch: a NEW database holding the parent's data at an instant (its own id, host, token and password)")
    .argument("<parent>", "the database to branch (id or name)")
    .requiredOption("--name <new>", "name of the new database")
    .option("--at <RFC3339|LSN>", "the instant: now (default), an RFC 3339 time inside the backup window, or an LSN such as 0/3000060")
    .option("--expires-at <time>", "RFC 3339 instant at which ccpd destroys the branch")
    .option("--ttl <duration>", "or a lifetime from now: 90s, 30m, 2h, 7d")
    .addOption(jsonOption())
    .action(async (parent: string, o: { name: string; at?: string; expiresAt?: string; ttl?: string; json?: boolean }) => {
      validateDatabaseName(o.name); // fail fast, before contacting ccpd
      printBranchCreated(Output.for(o), await createBranch(new ApiClient(), parent, o.name, o));
    });
}

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

/**
 * `ccp db branch create <parent> --name <new> [--at …] [--expires-at … | --ttl …]`:
 * a new database holding the parent's data at that instant (default now). Like
 * `ccp db restore`, the project's .cluster/config.json is left alone.
 */
export async function createBranch(api: ApiClient, parentRef: string, name: string, options: BranchOptions = {}): Promise<CreatedBranch> {
  if (options.expiresAt !== undefined && options.ttl !== undefined) throw usageError("--expires-at and --ttl do not go together.", "Pass one of them.");
  const parent = await getDatabase(api, parentRef);
  const r = await api.request<{ database: DatabaseView; token: string; password: string; database_url: string }>("POST", `/v1/databases/${encodeURIComponent(parent.id)}/branches`, {
    name,
    ...(options.at === undefined ? {} : { at: options.at }),
    ...(options.expiresAt === undefined ? {} : { expires_at: options.expiresAt }),
    ...(options.ttl === undefined ? {} : { ttl: options.ttl }),
  });
  return { parent, database: r.database, token: r.token, password: r.password, databaseUrl: r.database_url };
}

export function printBranchCreated(out: Output, r: CreatedBranch): void {
  out.result({ parent: r.parent, database: r.database, token: r.token, password: r.password, database_url: r.databaseUrl }, () => {
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
  });
}
