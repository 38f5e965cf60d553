import type { Command } from "commander";
import type { CliRun } from "../../command.js";
import { DEFAULT_MIGRATIONS_DIR, jsonOption, sqlTargetOptions } from "../../options.js";
import { Output } from "../../output.js";

/** `ccp db migrate`; returns the command, under which `migrate new` registers. */
export function register(db: Command, run: CliRun): Command {
  return sqlTargetOptions(
    db
      .command("migrate")
      .description("apply pending migrations/*.sql in order, each in one transaction, tracked in _ccp_migrations")
      .option("--dir <path>", "migrations directory", DEFAULT_MIGRATIONS_DIR),
  )
    .option("--status", "show which migrations are applied, pending or changed; apply nothing")
    .option("--dry-run", "list the migrations that would run; apply nothing")
    .addOption(jsonOption())
    .action(async (o: { dir?: string; dbId?: string; token?: string; database?: string; status?: boolean; dryRun?: boolean; json?: boolean }) => {
      // The migration runner is loaded only when it runs.
      const { runMigrate } = await import("../../migrations/migrate.js");
      run.code = await runMigrate(Output.for(o), o);
    });
}
