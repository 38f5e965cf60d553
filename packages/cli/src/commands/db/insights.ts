import type { InsightSort, StatementInsight } from "@ccp/server/client-side";
import type { ApiClient } from "../../api.js";
import { renderTable } from "../../format/table.js";
import type { Output } from "../../output.js";

/** `ccp db insights [<db>] [--sort total|mean|calls] [--limit N]`. */
export async function statementInsights(api: ApiClient, ref: string, o: { sort: InsightSort; limit: number }): Promise<StatementInsight[]> {
  const path = `/v1/databases/${encodeURIComponent(ref)}/insights?sort=${o.sort}&limit=${o.limit}`;
  return (await api.request<{ statements: StatementInsight[] }>("GET", path)).statements;
}

/** `ccp db insights --reset`. */
export async function resetInsights(api: ApiClient, ref: string): Promise<void> {
  await api.request("POST", `/v1/databases/${encodeURIComponent(ref)}/insights/reset`);
}

const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toFixed(3));
const MAX_QUERY = 80;

function oneLine(query: string): string {
  const flat = query.replace(/\s+/g, " ").trim();
  return flat.length > MAX_QUERY ? `${flat.slice(0, MAX_QUERY - 1)}…` : flat;
}

export function printInsights(out: Output, statements: readonly StatementInsight[], sort: InsightSort): void {
  if (out.json) return out.data({ statements });
  if (statements.length === 0) return out.note("No statements recorded yet (or since the last --reset).");
  const rows = statements.map((s) => [
    ms(s.total_ms),
    ms(s.mean_ms),
    String(s.calls),
    String(s.rows),
    s.cache_hit_rate === null ? "" : `${(s.cache_hit_rate * 100).toFixed(1)}%`,
    s.database,
    oneLine(s.query),
  ]);
  const columns = [
    { name: "total ms", align: "right" },
    { name: "mean ms", align: "right" },
    { name: "calls", align: "right" },
    { name: "rows", align: "right" },
    { name: "hit", align: "right" },
    { name: "database", align: "left" },
    { name: "query", align: "left" },
  ] as const;
  for (const line of renderTable(columns, rows)) out.line(line);
  out.note(out.style("dim", `(${statements.length} statement${statements.length === 1 ? "" : "s"}, by ${sort === "calls" ? "calls" : `${sort} time`})`));
}
