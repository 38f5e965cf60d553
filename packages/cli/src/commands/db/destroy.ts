import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { getDatabase } from "../../databases.js";
import { CliError, EXIT } from "../../errors.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";
import { PROJECT_CONFIG, readProjectConfig, removeProjectConfig } from "../../project-config.js";
import { confirm } from "../../prompt.js";

export function register(db: Command): Command {
  return db
    .command("destroy")
    .alias("rm")
    .description("destroy a database and all its data")
    .argument("<id|name>", "database id (db-…) or name")
    .option("-y, --yes", "do not ask for confirmation")
    .addOption(jsonOption())
    .action(async (ref: string, o: { yes?: boolean; json?: boolean }) =>
      printDestroyed(Output.for(o), await destroyDatabase(new ApiClient(), ref, { yes: Boolean(o.yes) })),
    );
}

export interface DestroyResult {
  readonly database: DatabaseView;
  /** True when the project's .cluster/config.json pointed at it and was removed. */
  readonly removedProjectConfig: boolean;
  /** Its branches, which stay as standalone databases. */
  readonly keptBranches: readonly string[];
}

/**
 * `ccp db destroy` / `rm <id|name>`: asks first unless `yes`. A parent with
 * branches is destroyed with force (the question names them); they stay, standalone.
 */
export async function destroyDatabase(
  api: ApiClient,
  ref: string,
  options: { yes: boolean; cwd?: string; ask?: (q: string) => Promise<boolean> },
): Promise<DestroyResult> {
  const db = await getDatabase(api, ref);
  const { databases: branches } = await api.request<{ databases: DatabaseView[] }>("GET", `/v1/databases/${db.id}/branches`);
  const branchNote = branches.length
    ? ` It has ${branches.length} branch${branches.length === 1 ? "" : "es"} (${branches.map((b) => b.name).join(", ")}), which will stay as standalone databases.`
    : "";
  if (!options.yes) {
    const ask = options.ask ?? confirm;
    if (!(await ask(`Delete database ${db.id}? This will destroy all data.${branchNote}`))) {
      throw new CliError("declined", `Not destroyed: database ${db.id} (${db.name}) is unchanged.`, { exitCode: EXIT.declined });
    }
  }
  const { database } = await api.request<{ database: DatabaseView }>("DELETE", `/v1/databases/${db.id}${branches.length ? "?force=true" : ""}`);
  const project = readProjectConfig(options.cwd);
  const removedProjectConfig = project?.databaseId === db.id;
  if (removedProjectConfig) removeProjectConfig(options.cwd);
  return { database, removedProjectConfig, keptBranches: branches.map((b) => b.name) };
}

export function printDestroyed(out: Output, r: DestroyResult): void {
  out.result({ database: r.database, removed_project_config: r.removedProjectConfig, kept_branches: r.keptBranches }, () => {
    out.success(`Destroyed database ${out.style("bold", r.database.name)} (${r.database.id})`);
    if (r.removedProjectConfig) out.success(`Removed ${PROJECT_CONFIG}, which pointed at it`);
    if (r.keptBranches.length) out.note(`Its branches stay as standalone databases: ${r.keptBranches.join(", ")}`);
  });
}
