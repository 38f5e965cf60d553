import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";
import { readNewPassword } from "../../password-input.js";
import { PROJECT_CONFIG, readProjectConfig, writeProjectConfig } from "../../project-config.js";

export function register(db: Command): Command {
  return db
    .command("reset-password")
    .description("set a new password for the database's owner role (open sessions stay; new ones need it)")
    .argument("<id|name>", "database id (db-…) or name")
    .option("--password-stdin", "read the password from standard input instead of prompting")
    .addOption(jsonOption())
    .action(async (ref: string, o: { passwordStdin?: boolean; json?: boolean }) => {
      const password = await readNewPassword(o);
      printPasswordReset(Output.for(o), await resetPassword(new ApiClient(), ref, password));
    });
}

export interface ResetPasswordResult {
  readonly database: DatabaseView;
  readonly databaseUrl: string;
  /** True when .cluster/config.json pointed at this database and got the new DATABASE_URL. */
  readonly updatedProjectConfig: boolean;
}

/**
 * `ccp db reset-password <id|name>` (seed 003): a new wire password for the
 * owner role. Sessions already open stay open; new connections need the new
 * password. The project's DATABASE_URL follows when it is this database's.
 */
export async function resetPassword(api: ApiClient, ref: string, password: string, cwd = process.cwd()): Promise<ResetPasswordResult> {
  const r = await api.request<{ database: DatabaseView; database_url: string }>("POST", `/v1/databases/${encodeURIComponent(ref)}/password`, { password });
  const project = readProjectConfig(cwd);
  const updatedProjectConfig = project?.databaseId === r.database.id;
  if (project && updatedProjectConfig) writeProjectConfig({ ...project, databaseUrl: r.database_url }, cwd);
  return { database: r.database, databaseUrl: r.database_url, updatedProjectConfig };
}

export function printPasswordReset(out: Output, r: ResetPasswordResult): void {
  out.result({ database: r.database, database_url: r.databaseUrl, updated_project_config: r.updatedProjectConfig }, () => {
    out.success(`Password reset for ${out.style("bold", r.database.user)} on ${out.style("bold", r.database.name)} (${r.database.id})`);
    out.note(out.style("dim", "  Open connections stay connected; new connections need the new password."));
    if (r.updatedProjectConfig) out.success(`DATABASE_URL updated in ${PROJECT_CONFIG}`);
  });
}
