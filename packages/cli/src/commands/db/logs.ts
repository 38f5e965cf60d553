import http from "node:http";
import https from "node:https";
import { isCcpError, LOG_LEVELS, parseLevel, parseSince, type LogEntry } from "@ccp/server/client-side";
import { type Command, InvalidArgumentError } from "commander";
import { type ApiClient, START_HINT } from "../../api.js";
import type { CliRun } from "../../command.js";
import { CliError, EXIT } from "../../errors.js";
import { jsonOption, positiveInt } from "../../options.js";
import { Output } from "../../output.js";
import { databaseTarget } from "../../target.js";

/** Checked here with the server's own parser, so a typo fails before contacting ccpd. */
function sinceOption(value: string): string {
  try {
    parseSince(value);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message} ${isCcpError(err) ? (err.hint ?? "") : ""}`.trim());
  }
  return value;
}

function levelOption(value: string): string {
  try {
    return parseLevel(value);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message} ${isCcpError(err) ? (err.hint ?? "") : ""}`.trim());
  }
}

export function register(db: Command, run: CliRun): Command {
  return db
    .command("logs")
    .description("show a database's Postgres log and platform events (default: the project's database)")
    .argument("[id|name]", "database id (db-…) or name (default: from .cluster/config.json)")
    .option("-f, --follow", "keep printing new entries until Ctrl+C")
    .option("--since <when>", "from this long ago (30s, 15m, 2h, 7d) or an RFC 3339 time", sinceOption, "1h")
    .option("--level <level>", `lowest level shown: ${LOG_LEVELS.join(", ")}`, levelOption, "log")
    .option("--limit <n>", "at most this many of the newest entries (before following)", positiveInt, 1000)
    .addOption(jsonOption())
    .action(async (ref: string | undefined, o: { follow?: boolean; since: string; level: string; limit: number; json?: boolean }) => {
      const { api, ref: target } = databaseTarget(ref);
      if (o.follow) {
        run.code = await followLogs(Output.for(o), api, target, o);
        return;
      }
      printLogs(Output.for(o), await readLogs(api, target, o));
    });
}

export interface LogsOptions {
  readonly since?: string;
  readonly level?: string;
  readonly limit?: number;
}

function query(o: LogsOptions, follow: boolean): string {
  const p = new URLSearchParams();
  if (o.since) p.set("since", o.since);
  if (o.level) p.set("level", o.level);
  if (o.limit) p.set("limit", String(o.limit));
  if (follow) p.set("follow", "true");
  const s = p.toString();
  return s ? `?${s}` : "";
}

/** `ccp db logs [<db>] [--since 15m] [--level warning]`: the entries so far. */
export async function readLogs(api: ApiClient, ref: string, o: LogsOptions): Promise<LogEntry[]> {
  return (await api.request<{ entries: LogEntry[] }>("GET", `/v1/databases/${encodeURIComponent(ref)}/logs${query(o, false)}`)).entries;
}

const LEVEL_STYLE: Record<string, "red" | "yellow" | "dim" | undefined> = { warning: "yellow", error: "red", fatal: "red", panic: "red", debug: "dim" };

/** One entry as a line (and indented detail lines), or as compact JSON. */
export function printEntry(out: Output, e: LogEntry): void {
  out.entry(e, () => printEntryText(out, e));
}

function printEntryText(out: Output, e: LogEntry): void {
  const level = e.level.toUpperCase().padEnd(7);
  const styled = LEVEL_STYLE[e.level] ? out.style(LEVEL_STYLE[e.level] as "red", level) : level;
  const where = e.source === "ccp" ? "ccp" : [e.user, e.database].filter(Boolean).join("@") || (e.backend_type ?? "postgres");
  out.line(`${out.style("dim", e.time)} ${styled} ${out.style("dim", `[${where}]`)} ${e.message}${e.code ? out.style("dim", ` (${e.code})`) : ""}`);
  for (const [label, value] of [["detail", e.detail], ["hint", e.hint], ["statement", e.statement]] as const) {
    if (value) out.line(`    ${out.style("dim", `${label}:`)} ${value.replace(/\n/g, "\n    ")}`);
  }
}

export function printLogs(out: Output, entries: readonly LogEntry[]): void {
  out.result({ entries }, () => {
    if (entries.length === 0) return out.note("No log entries in that window (try a longer --since or a lower --level).");
    for (const e of entries) printEntryText(out, e);
  });
}

/**
 * `ccp db logs --follow`: print entries as ccpd streams them (NDJSON) until
 * Ctrl+C (exit 0) or ccpd ends the stream.
 */
export async function followLogs(out: Output, api: ApiClient, ref: string, o: LogsOptions, signal?: AbortSignal): Promise<number> {
  const url = new URL(`${api.target.apiUrl}/v1/databases/${encodeURIComponent(ref)}/logs${query(o, true)}`);
  const headers: Record<string, string> = api.target.token ? { authorization: `Bearer ${api.target.token}` } : {};
  const request = url.protocol === "https:" ? https.request : http.request;
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  signal?.addEventListener("abort", onSigint, { once: true });
  try {
    return await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: "GET", headers, signal: controller.signal }, (res) => {
        res.setEncoding("utf8");
        if (res.statusCode !== 200) {
          let text = "";
          res.on("data", (c: string) => (text += c));
          res.on("end", () => {
            let e: { code?: string; message?: string; hint?: string } = {};
            try {
              e = (JSON.parse(text) as { error?: typeof e }).error ?? {};
            } catch {
              // not JSON: the generic message below
            }
            reject(new CliError(e.code ?? `http_${res.statusCode}`, e.message ?? `ccpd answered HTTP ${res.statusCode}.`, { hint: e.hint }));
          });
          return;
        }
        let buffered = "";
        res.on("data", (chunk: string) => {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            if (line) printEntry(out, JSON.parse(line) as LogEntry);
          }
        });
        res.on("end", () => {
          out.note("ccpd ended the log stream.");
          resolve(EXIT.ok);
        });
        res.on("error", () => resolve(controller.signal.aborted ? EXIT.ok : EXIT.unavailable));
      });
      req.on("error", (err) => {
        if (controller.signal.aborted) return resolve(EXIT.ok);
        reject(new CliError("unreachable", `Cannot reach ccpd at ${api.target.apiUrl} (${(err as NodeJS.ErrnoException).code ?? err.message}).`, { hint: START_HINT, exitCode: EXIT.unavailable }));
      });
      req.end();
    });
  } finally {
    process.off("SIGINT", onSigint);
    signal?.removeEventListener("abort", onSigint);
  }
}
