import type { Command } from "commander";
import { registerEntries, type CliRun, type Entry } from "../../command.js";

const VERBS: readonly Entry[] = [
  { names: ["start"], load: () => import("./start.js") },
  { names: ["status"], load: () => import("./status.js") },
  { names: ["metrics-token"], load: () => import("./metrics-token.js") },
];

/** `ccp server …`: run and inspect ccpd. */
export async function register(ccp: Command, run: CliRun, args: readonly string[]): Promise<void> {
  const server = ccp.command("server").description("run and inspect ccpd, the control plane");
  await registerEntries(server, run, args, VERBS);
}
