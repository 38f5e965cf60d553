import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../../api.js";
import { getDatabase } from "../../../databases.js";
import { branchSummary } from "../../../format/branch.js";
import { jsonOption } from "../../../options.js";
import { Output } from "../../../output.js";

export function register(branch: Command): Command {
  return branch
    .command("list")
    .alias("ls")
    .description("list branches (of one database, or all)")
    .argument("[parent]", "only the branches of this database")
    .addOption(jsonOption())
    .action(async (parent: string | undefined, o: { json?: boolean }) => printBranchList(Output.for(o), await listBranches(new ApiClient(), parent)));
}

/** `ccp db branch list [<parent>]`: one database's branches, or every branch. */
export async function listBranches(api: ApiClient, parentRef?: string): Promise<{ parent?: DatabaseView; branches: DatabaseView[] }> {
  if (parentRef === undefined) return { branches: (await api.request<{ databases: DatabaseView[] }>("GET", "/v1/branches")).databases };
  const parent = await getDatabase(api, parentRef);
  return { parent, branches: (await api.request<{ databases: DatabaseView[] }>("GET", `/v1/databases/${encodeURIComponent(parent.id)}/branches`)).databases };
}

export function printBranchList(out: Output, r: { parent?: DatabaseView; branches: DatabaseView[] }): void {
  out.result({ databases: r.branches }, () => {
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
  });
}
