import { validateOwnerRole, validateProvisionName } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { createDatabase, type CreateResult } from "../../databases.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";
import { readNewPassword } from "../../password-input.js";
import { PROJECT_CONFIG } from "../../project-config.js";

export function register(db: Command): Command {
  return db
    .command("provision")
    .description("create a database whose owner role and password you choose (password at a hidden prompt, or --password-stdin)")
    .argument("<name>", "3–16 characters: lowercase letters, digits and _")
    .requiredOption("-U, --username <username>", "owner role: 3–16 characters of lowercase letters, digits and _")
    .option("--password-stdin", "read the password from standard input instead of prompting")
    .addOption(jsonOption())
    .action(async (name: string, o: { username: string; passwordStdin?: boolean; json?: boolean }) => {
      // Fail fast, before asking for a password or contacting ccpd.
      validateProvisionName(name);
      validateOwnerRole(o.username);
      const password = await readNewPassword(o);
      printProvisioned(Output.for(o), await provisionDatabase(new ApiClient(), name, o.username, password));
    });
}

/**
 * `ccp db provision NAME -U USER` (seed 003): a database whose owner role is
 * USER with the password given, instead of `clusterbase` with a random one.
 * The name, user and password rules are checked by the caller and again by ccpd.
 */
export function provisionDatabase(api: ApiClient, name: string, owner: string, password: string, cwd = process.cwd()): Promise<CreateResult> {
  return createDatabase(api, name, cwd, { owner, password });
}

export function printProvisioned(out: Output, r: CreateResult): void {
  out.result({ database: r.database, token: r.token, database_url: r.databaseUrl, config_file: r.configFile }, () => {
    out.success(`Provisioned database ${out.style("bold", r.database.name)}`);
    out.line();
    out.fields([
      ["ID", r.database.id],
      ["Host", r.database.host],
      ["User", r.database.user],
      ["Database", r.database.database],
      ["Token", `${r.token.slice(0, 12)}...`],
    ]);
    out.line();
    out.success(`Token and DATABASE_URL saved to ${PROJECT_CONFIG}`);
  });
}
