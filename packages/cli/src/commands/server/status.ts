import type { Command } from "commander";
import { ApiClient, START_HINT } from "../../api.js";
import { CliError, EXIT } from "../../errors.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";

export function register(server: Command): Command {
  return server
    .command("status")
    .description("report whether ccpd is up")
    .addOption(jsonOption())
    .action(async (o: { json?: boolean }) => printStatus(Output.for(o), await serverStatus(new ApiClient())));
}

/** `ccp server status`: is ccpd up at the configured API URL? */
export async function serverStatus(api: ApiClient): Promise<{ url: string; version: string }> {
  try {
    const health = await api.request<{ status: string; version: string }>("GET", "/v1/health", undefined, { auth: false });
    return { url: api.target.apiUrl, version: health.version };
  } catch (err) {
    if (err instanceof CliError && err.exitCode === EXIT.unavailable) {
      throw new CliError("unreachable", `ccpd is not running at ${api.target.apiUrl}.`, { hint: START_HINT, exitCode: EXIT.unavailable });
    }
    throw err;
  }
}

export function printStatus(out: Output, s: { url: string; version: string }): void {
  out.result({ status: "up", url: s.url, version: s.version }, () => out.success(`ccpd ${s.version} is up at ${s.url}`));
}
