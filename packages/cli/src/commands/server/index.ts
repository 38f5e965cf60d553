import type { Command } from "commander";
import type { CliRun } from "../../command.js";
import * as metricsToken from "./metrics-token.js";
import * as start from "./start.js";
import * as status from "./status.js";

/** `ccp server …`: run and inspect ccpd. */
export function register(ccp: Command, run: CliRun): Command {
  const server = ccp.command("server").description("run and inspect ccpd, the control plane");
  for (const c of [start, status, metricsToken]) c.register(server, run);
  return server;
}
