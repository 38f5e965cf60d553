import type { Command } from "commander";
import { registerEntries, type CliRun, type Entry } from "../../../command.js";

const VERBS: readonly Entry[] = [
  { names: ["create"], load: () => import("./create.js") },
  { names: ["list", "ls"], load: () => import("./list.js") },
  { names: ["reset"], load: () => import("./reset.js") },
];

/** `ccp db branch …`: full copies of a database, resettable, expiring. */
export async function register(db: Command, run: CliRun, args: readonly string[]): Promise<void> {
  const branch = db.command("branch").description("branches: full copies of a database from now or an earlier instant, resettable, expiring");
  await registerEntries(branch, run, args, VERBS);
}
