import http from "node:http";
import https from "node:https";
import type { LogEntry } from "@ccp/server/client-side";
import { ApiClient, START_HINT } from "../../api.js";
import { CliError, EXIT, usageError } from "../../errors.js";
import type { Output } from "../../output.js";
import { PROJECT_CONFIG, readProjectConfig } from "../../project-config.js";

export interface LogsOptions {
  readonly since?: string;
  readonly level?: string;
  readonly limit?: number;
}

/**
 * The database a per-database command is for: the argument, else the
 * project's (.cluster/config.json). Without an admin key, the project's
 * database token is used: it reads only its own database.
 */
export function databaseTarget(ref: string | undefined, cwd = process.cwd()): { api: ApiClient; ref: string } {
  const project = readProjectConfig(cwd);
  const target = ref ?? project?.databaseId;
  if (!target) throw usageError(`No database given, and no ${PROJECT_CONFIG} here.`, "Pass the database id or name, or run it in the project directory.");
  const api = new ApiClient();
  if (!api.target.token && project && (target === project.databaseId || target === project.name)) {
    return { api: new ApiClient({ apiUrl: project.apiUrl, token: project.token }), ref: project.databaseId };
  }
  return { api, ref: target };
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
  if (out.json) return out.line(JSON.stringify(e));
  const level = e.level.toUpperCase().padEnd(7);
  const styled = LEVEL_STYLE[e.level] ? out.style(LEVEL_STYLE[e.level] as "red", level) : level;
  const where = e.source === "ccp" ? "ccp" : [e.user, e.database].filter(Boolean).join("@") || (e.backend_type ?? "postgres");
  out.line(`${out.style("dim", e.time)} ${styled} ${out.style("dim", `[${where}]`)} ${e.message}${e.code ? out.style("dim", ` (${e.code})`) : ""}`);
  for (const [label, value] of [["detail", e.detail], ["hint", e.hint], ["statement", e.statement]] as const) {
    if (value) out.line(`    ${out.style("dim", `${label}:`)} ${value.replace(/\n/g, "\n    ")}`);
  }
}

export function printLogs(out: Output, entries: readonly LogEntry[]): void {
  if (out.json) return out.data({ entries });
  if (entries.length === 0) return out.note("No log entries in that window (try a longer --since or a lower --level).");
  for (const e of entries) printEntry(out, e);
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
