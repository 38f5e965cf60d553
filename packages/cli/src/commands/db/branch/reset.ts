import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../../api.js";
import { getDatabase } from "../../../databases.js";
import { CliError, EXIT } from "../../../errors.js";
import { branchTime } from "../../../format/branch.js";
import { jsonOption } from "../../../options.js";
import { Output } from "../../../output.js";
import { confirm } from "../../../prompt.js";

export function register(branch: Command): Command {
  return branch
    .command("reset")
    .description("replace a branch's data with its parent's current state (id, host, token and password stay)")
    .argument("<branch>", "the branch (id or name)")
    .option("-y, --yes", "do not ask for confirmation")
    .addOption(jsonOption())
    .action(async (ref: string, o: { yes?: boolean; json?: boolean }) => printBranchReset(Output.for(o), await resetBranch(new ApiClient(), ref, { yes: Boolean(o.yes) })));
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

export function printBranchReset(out: Output, d: DatabaseView): void {
  out.result({ database: d }, () =>
    out.success(`Reset branch ${out.style("bold", d.name)} (${d.id}) to ${d.parent_id}${d.branched_at ? ` as of ${branchTime(d.branched_at)}` : ""}; token and password unchanged`),
  );
}
