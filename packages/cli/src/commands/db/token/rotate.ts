import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../../api.js";
import { issueToken } from "../../../databases.js";
import { usageError } from "../../../errors.js";
import { jsonOption } from "../../../options.js";
import { Output } from "../../../output.js";
import { PROJECT_CONFIG, readProjectConfig, writeProjectConfig } from "../../../project-config.js";

export function register(token: Command): Command {
  return token
    .command("rotate")
    .description("issue a new HTTP token; the previous one stops working at once")
    .option("--db-id <id>", "database id or name (default: from .cluster/config.json)")
    .addOption(jsonOption())
    .action(async (o: { dbId?: string; json?: boolean }) => printRotated(Output.for(o), await rotateToken(new ApiClient(), o.dbId)));
}

export interface RotatedToken {
  readonly database: DatabaseView;
  readonly token: string;
  /** True when .cluster/config.json pointed at this database and now holds the new token. */
  readonly savedToProject: boolean;
}

/**
 * `ccp db token rotate [--db-id ID]`: for the given database, else the
 * project's. The project's config gets the new token when it points at it.
 */
export async function rotateToken(api: ApiClient, dbId: string | undefined, cwd = process.cwd()): Promise<RotatedToken> {
  const project = readProjectConfig(cwd);
  const ref = dbId ?? project?.databaseId;
  if (!ref) {
    throw usageError(`No database to rotate the token of: no --db-id, and no ${PROJECT_CONFIG} here.`, "Pass --db-id <id>, or run it in the project directory.");
  }
  const { database, token } = await issueToken(api, ref);
  const savedToProject = project?.databaseId === database.id;
  if (project && savedToProject) writeProjectConfig({ ...project, token }, cwd);
  return { database, token, savedToProject };
}

export function printRotated(out: Output, r: RotatedToken): void {
  out.result({ database: r.database, token: r.token, saved_to_project: r.savedToProject }, () => {
    out.success(`New token issued for ${out.style("bold", r.database.name)} (${r.database.id})`);
    out.line();
    // Shown in full only when it is not saved anywhere: it is never shown again.
    out.fields([["Token", r.savedToProject ? `${r.token.slice(0, 12)}...` : r.token]]);
    out.line();
    if (r.savedToProject) out.success(`Token saved to ${PROJECT_CONFIG}`);
    else out.note("Save this token now: it is not shown again.");
    out.note(`${out.style("yellow", "!")} The previous token stopped working.`);
  });
}
