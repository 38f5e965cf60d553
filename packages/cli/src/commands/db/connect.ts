import type { Command } from "commander";
import type { CliRun } from "../../command.js";
import { sqlTargetOptions } from "../../options.js";
import { Output } from "../../output.js";

export function register(db: Command, run: CliRun): Command {
  return sqlTargetOptions(
    db
      .command("connect")
      .description("open an interactive SQL shell on the project's database (with stdin piped: run the script, stop at the first error)")
      .argument("[id|name]", "the project's database (default: from .cluster/config.json)"),
  ).action(async (ref: string | undefined, o: { dbId?: string; token?: string; database?: string }) => {
    // The shell (readline, history, pager) is loaded only when it runs.
    const { runConnect } = await import("../../shell/connect.js");
    run.code = await runConnect(new Output(), ref, o);
  });
}
