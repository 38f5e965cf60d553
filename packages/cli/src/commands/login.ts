import { writeUserConfig } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../api.js";
import { usageError } from "../errors.js";
import { jsonOption } from "../options.js";
import { Output } from "../output.js";

export function register(ccp: Command): Command {
  return ccp
    .command("login")
    .description("save the API URL and admin key of a (remote) ccpd")
    .requiredOption("--api-url <url>", "ccpd's HTTP URL, e.g. http://127.0.0.1:7070")
    .requiredOption("--token <key>", "an admin API key of that ccpd")
    .addOption(jsonOption())
    .action(async (o: { apiUrl: string; token: string; json?: boolean }) => printLogin(Output.for(o), await login(o.apiUrl, o.token)));
}

/** `ccp login --api-url URL --token KEY`: check the key against that ccpd, then save it. */
export async function login(apiUrl: string, token: string): Promise<{ apiUrl: string; file: string }> {
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    throw usageError(`Not a URL: ${apiUrl}`, "For example: --api-url http://127.0.0.1:7070");
  }
  const normalized = url.toString().replace(/\/+$/, "");
  await new ApiClient({ apiUrl: normalized, token }).request("GET", "/v1/databases");
  return { apiUrl: normalized, file: writeUserConfig({ apiUrl: normalized, token }) };
}

export function printLogin(out: Output, r: { apiUrl: string; file: string }): void {
  out.result({ api_url: r.apiUrl, config_file: r.file }, () => out.success(`Logged in to ${r.apiUrl} (saved to ${r.file})`));
}
