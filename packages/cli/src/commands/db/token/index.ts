import type { Command } from "commander";
import { registerEntries, type CliRun, type Entry } from "../../../command.js";

const VERBS: readonly Entry[] = [{ names: ["rotate"], load: () => import("./rotate.js") }];

/** `ccp db token …`: a database's HTTP token. */
export async function register(db: Command, run: CliRun, args: readonly string[]): Promise<void> {
  const token = db.command("token").description("manage a database's HTTP token");
  await registerEntries(token, run, args, VERBS);
}
