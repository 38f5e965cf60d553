import { isCcpError, VERSION } from "@ccp/server/client-side";
import { Command, CommanderError } from "commander";
import type { CliRun } from "./command.js";
import { registerCommands } from "./commands/index.js";
import { CliError, EXIT } from "./errors.js";
import { Output } from "./output.js";

/**
 * Build the `ccp` program for the command line `args` (after `ccp`). Each
 * command registers itself (commands/**.ts), and only the one being run is
 * loaded; an action that decides its exit code sets `run.code`.
 */
async function program(run: CliRun, args: readonly string[]): Promise<Command> {
  const ccp = new Command("ccp")
    .description("ccp: managed Postgres on your own machine")
    .version(VERSION)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    // `ccp run -- cmd --flags`: options after the command belong to it (passThroughOptions there).
    .enablePositionalOptions()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  await registerCommands(ccp, run, args);
  return ccp;
}

/**
 * The reader went away (`ccp db list | head -1`): stop quietly, as Unix tools
 * do, instead of an unhandled EPIPE. Exit 0 like `yes | head` from a shell's
 * view: the output that was wanted was delivered.
 */
export function exitQuietlyOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE" || err.code === "ERR_STREAM_DESTROYED") process.exit(0);
    throw err;
  });
}

/** Run the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnClosedPipe(process.stdout);
  exitQuietlyOnClosedPipe(process.stderr);
  const run: CliRun = { code: EXIT.ok };
  const out = new Output();
  try {
    await (await program(run, argv.slice(2))).parseAsync(argv);
    return run.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; usage errors were already printed by commander
      return err.exitCode === 0 ? 0 : EXIT.usage;
    }
    if (err instanceof CliError) {
      out.error(err.message, err.hint);
      return err.exitCode;
    }
    if (isCcpError(err)) {
      const mapped = new CliError(err.code, err.message, { hint: err.hint });
      out.error(mapped.message, mapped.hint);
      return mapped.exitCode;
    }
    out.error(`Unexpected error: ${(err as Error).message ?? String(err)}`, "This is a bug in ccp; please report it with the command you ran.");
    return EXIT.failure;
  }
}
