import type { Command } from "commander";
import { registerEntries, type CliRun, type Entry } from "../command.js";

/**
 * Every command of `ccp`, in the order `ccp --help` lists them; each group's
 * index.ts lists its verbs the same way. How to add one: README.md in this folder.
 */
const COMMANDS: readonly Entry[] = [
  { names: ["server"], load: () => import("./server/index.js") },
  { names: ["run"], load: () => import("./run.js") },
  { names: ["login"], load: () => import("./login.js") },
  { names: ["db"], load: () => import("./db/index.js") },
];

/** `args`: the command line after `ccp`. `ccp --version` needs no command at all. */
export async function registerCommands(ccp: Command, run: CliRun, args: readonly string[]): Promise<void> {
  if (!args.some((a) => !a.startsWith("-")) && args.some((a) => a === "-V" || a === "--version")) return;
  await registerEntries(ccp, run, args, COMMANDS);
}
