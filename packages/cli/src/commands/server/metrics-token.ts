import type { ApiClient } from "../../api.js";
import type { Output } from "../../output.js";

/** `ccp server metrics-token`: a read-only token for GET /metrics (a Prometheus scraper's bearer token). */
export async function issueMetricsToken(api: ApiClient): Promise<string> {
  return (await api.request<{ token: string }>("POST", "/v1/metrics-tokens")).token;
}

export function printMetricsToken(out: Output, token: string, apiUrl: string): void {
  if (out.json) return out.data({ token, metrics_url: `${apiUrl}/metrics` });
  out.success("Metrics token issued (it can read /metrics and nothing else)");
  out.line();
  out.fields([
    ["Token", token],
    ["Scrape", `${apiUrl}/metrics`],
  ]);
  out.line();
  out.note("Save it now: it is not shown again. In prometheus.yml: authorization: { credentials: <token> }");
}
