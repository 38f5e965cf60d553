import type { Command } from "commander";

/**
 * The exit code of the run, for commands that decide their own (`ccp run`,
 * `db migrate`, `db connect`, `db logs -f`, `server start`). A failure is
 * thrown instead of setting `code`.
 */
export interface CliRun {
  code: number;
}

/**
 * Each `commands/**.ts` module exports one: a verb adds itself (options,
 * arguments, action) under `parent`; a group adds itself and its verbs, given
 * the words of the command line after its name (`args`) to load only the verb run.
 */
export type Register = (parent: Command, run: CliRun, args: readonly string[]) => unknown;

/** A verb or group in a group's list: the names it answers to, and its module, loaded only when needed. */
export interface Entry {
  readonly names: readonly string[];
  readonly load: () => Promise<{ readonly register: Register }>;
}

/**
 * Register a group's entries, in the order `--help` lists them. When the
 * command line names one of them (`ccp db list …`), only that one's module is
 * loaded and registered, so a run loads the verb it runs and not the forty
 * others; otherwise (help, a typo that commander then reports with a
 * suggestion) all of them are. `args`: the words after the group's name.
 */
export async function registerEntries(parent: Command, run: CliRun, args: readonly string[], entries: readonly Entry[]): Promise<void> {
  const at = args.findIndex((a) => !a.startsWith("-"));
  const named = at < 0 ? undefined : entries.find((e) => e.names.includes(args[at] as string));
  if (named) {
    await (await named.load()).register(parent, run, args.slice(at + 1));
    return;
  }
  for (const e of entries) await (await e.load()).register(parent, run, []);
}
