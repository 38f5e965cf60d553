import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";

export function register(server: Command): Command {
  return server
    .command("metrics-token")
    .description("issue a read-only token for GET /metrics (for a Prometheus scraper)")
    .addOption(jsonOption())
    .action(async (o: { json?: boolean }) => {
      const api = new ApiClient();
      printMetricsToken(Output.for(o), await issueMetricsToken(api), api.target.apiUrl);
    });
}

/** `ccp server metrics-token`: a read-only token for GET /metrics (a Prometheus scraper's bearer token). */
export async function issueMetricsToken(api: ApiClient): Promise<string> {
  return (await api.request<{ token: string }>("POST", "/v1/metrics-tokens")).token;
}

export function printMetricsToken(out: Output, token: string, apiUrl: string): void {
  out.result({ token, metrics_url: `${apiUrl}/metrics` }, () => {
    out.success("Metrics token issued (it can read /metrics and nothing else)");
    out.line();
    out.fields([
      ["Token", token],
      ["Scrape", `${apiUrl}/metrics`],
    ]);
    out.line();
    out.note("Save it now: it is not shown again. In prometheus.yml: authorization: { credentials: <token> }");
  });
}
