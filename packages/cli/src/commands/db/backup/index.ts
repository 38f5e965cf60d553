import type { Command } from "commander";
import { registerEntries, type CliRun, type Entry } from "../../../command.js";

const VERBS: readonly Entry[] = [
  { names: ["create"], load: () => import("./create.js") },
  { names: ["list", "ls"], load: () => import("./list.js") },
  { names: ["restore"], load: () => import("./restore.js") },
  { names: ["delete", "rm"], load: () => import("./delete.js") },
  { names: ["download"], load: () => import("./download.js") },
  { names: ["verify"], load: () => import("./verify.js") },
];

/** `ccp db backup …`: base backups of a database. */
export async function register(db: Command, run: CliRun, args: readonly string[]): Promise<void> {
  const backup = db.command("backup").description("base backups of a database (default: the project's, from .cluster/config.json)");
  await registerEntries(backup, run, args, VERBS);
}
