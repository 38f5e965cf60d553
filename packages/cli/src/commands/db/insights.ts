import { INSIGHT_SORTS, type InsightSort, type StatementInsight } from "@ccp/server/client-side";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { ApiClient } from "../../api.js";
import { jsonOption, positiveInt } from "../../options.js";
import { Output } from "../../output.js";
import { databaseTarget } from "../../target.js";

function insightsLimit(value: string): number {
  const n = positiveInt(value);
  if (n > 1000) throw new InvalidArgumentError("expected at most 1000.");
  return n;
}

export function register(db: Command): Command {
  return db
    .command("insights")
    .description("statement statistics (pg_stat_statements): total and mean time, calls, rows, cache hit rate")
    .argument("[id|name]", "database id (db-…) or name (default: from .cluster/config.json)")
    .addOption(new Option("--sort <by>", "highest first by total time, mean time or calls").choices(INSIGHT_SORTS).default("total"))
    .option("--limit <n>", "how many statements (1–1000)", insightsLimit, 20)
    .option("--reset", "start the statistics afresh (prints nothing else)")
    .addOption(jsonOption())
    .action(async (ref: string | undefined, o: { sort: InsightSort; limit: number; reset?: boolean; json?: boolean }) => {
      const { api, ref: target } = databaseTarget(ref);
      if (o.reset) {
        await resetInsights(api, target);
        return printReset(Output.for(o));
      }
      printInsights(Output.for(o), await statementInsights(api, target, o), o.sort);
    });
}

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

export function printReset(out: Output): void {
  out.result({ reset: true }, () => out.success("Statement statistics reset"));
}

export function printInsights(out: Output, statements: readonly StatementInsight[], sort: InsightSort): void {
  out.result({ statements }, () => printInsightsText(out, statements, sort));
}

function printInsightsText(out: Output, statements: readonly StatementInsight[], sort: InsightSort): void {
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
  out.table(columns, rows);
  out.note(out.style("dim", `(${statements.length} statement${statements.length === 1 ? "" : "s"}, by ${sort === "calls" ? "calls" : `${sort} time`})`));
}
