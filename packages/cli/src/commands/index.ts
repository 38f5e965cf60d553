import type { Command } from "commander";
import type { CliRun } from "../command.js";
import * as db from "./db/index.js";
import * as login from "./login.js";
import * as run from "./run.js";
import * as server from "./server/index.js";

/** Every command of `ccp`, in the order `ccp --help` lists them. How to add one: README.md in this folder. */
export function registerCommands(ccp: Command, cliRun: CliRun): void {
  for (const c of [server, run, login, db]) c.register(ccp, cliRun);
}
