import type { Command } from "commander";
import type { CliRun } from "../../command.js";
import { DEFAULT_MIGRATIONS_DIR, jsonOption, parseSteps, sqlTargetOptions } from "../../options.js";
import { Output } from "../../output.js";

export function register(db: Command, run: CliRun): Command {
  return sqlTargetOptions(
    db
      .command("rollback")
      .description("revert the last applied migrations with their NNN_name.down.sql files")
      .option("--steps <n>", "how many migrations to revert", parseSteps, 1)
      .option("--dir <path>", "migrations directory", DEFAULT_MIGRATIONS_DIR),
  )
    .addOption(jsonOption())
    .action(async (o: { dir?: string; dbId?: string; token?: string; database?: string; steps: number; json?: boolean }) => {
      // The migration runner is loaded only when it runs.
      const { runRollback } = await import("../../migrations/rollback.js");
      run.code = await runRollback(Output.for(o), o);
    });
}
