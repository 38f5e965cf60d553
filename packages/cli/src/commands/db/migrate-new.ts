import type { Command } from "commander";
import { DEFAULT_MIGRATIONS_DIR, jsonOption } from "../../options.js";
import { Output } from "../../output.js";

/** `ccp db migrate new NAME`, registered under the `migrate` command. */
export function register(migrate: Command): Command {
  return migrate
    .command("new")
    .description("create the next numbered migration file (NNN_<name>.sql)")
    .argument("<name>", "what it does, e.g. create_users")
    .option("--dir <path>", `migrations directory (default: ${DEFAULT_MIGRATIONS_DIR})`)
    .addOption(jsonOption())
    .action(async (name: string, o: { dir?: string; json?: boolean }) => {
      // Unless options are positional, commander hands --dir/--json after `new` to migrate, which defines them too.
      const parent = migrate.opts<{ dir: string; json?: boolean }>();
      const { createMigration, printNewMigration } = await import("../../migrations/create.js");
      printNewMigration(Output.for({ json: o.json ?? parent.json }), createMigration(o.dir ?? parent.dir, name));
    });
}
