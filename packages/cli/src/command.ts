import type { Command } from "commander";

/**
 * What a command's registration gets besides its parent command: the exit code
 * of the run, for commands that decide their own (`ccp run`, `db migrate`,
 * `db connect`, `db logs -f`, `server start`). A failure is thrown instead.
 */
export interface CliRun {
  code: number;
}

/** Each `commands/**.ts` verb exports one: it adds itself (options, arguments, action) under `parent` and returns what it added. */
export type Register = (parent: Command, run: CliRun) => Command;
