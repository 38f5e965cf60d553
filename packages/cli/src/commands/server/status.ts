import { formatSize } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient, START_HINT } from "../../api.js";
import { CliError, EXIT } from "../../errors.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";

export function register(server: Command): Command {
  return server
    .command("status")
    .description("report whether ccpd is up, its default limits and which isolation is in force")
    .addOption(jsonOption())
    .action(async (o: { json?: boolean }) => printStatus(Output.for(o), await serverStatus(new ApiClient())));
}

/** One isolation mechanism as ccpd reports it (GET /v1/server). */
export interface IsolationFeature {
  readonly name: string;
  readonly enforced: boolean;
  readonly detail: string;
}

export interface ServerStatus {
  readonly url: string;
  readonly version: string;
  /** Absent when the admin key was refused or this ccpd has no /v1/server. */
  readonly runtime?: string;
  readonly default_limits?: Record<string, number>;
  readonly isolation?: IsolationFeature[];
}

/** `ccp server status`: is ccpd up at the configured API URL, with what defaults and what isolation? */
export async function serverStatus(api: ApiClient): Promise<ServerStatus> {
  let version: string;
  try {
    version = (await api.request<{ status: string; version: string }>("GET", "/v1/health", undefined, { auth: false })).version;
  } catch (err) {
    if (err instanceof CliError && err.exitCode === EXIT.unavailable) {
      throw new CliError("unreachable", `ccpd is not running at ${api.target.apiUrl}.`, { hint: START_HINT, exitCode: EXIT.unavailable });
    }
    throw err;
  }
  try {
    const s = await api.request<{ runtime: string; default_limits: Record<string, number>; isolation: IsolationFeature[] }>("GET", "/v1/server");
    return { url: api.target.apiUrl, version, runtime: s.runtime, default_limits: s.default_limits, isolation: s.isolation };
  } catch {
    // Up, but the saved key is not this ccpd's (or there is none): what health says is all there is.
    return { url: api.target.apiUrl, version };
  }
}

const shown = (name: string, v: number): string =>
  name === "memory" || name === "storage" ? formatSize(v) : name === "io" ? `${formatSize(v)}/s` : name === "cpu" ? `${v} core${v === 1 ? "" : "s"}` : String(v);

export function printStatus(out: Output, s: ServerStatus): void {
  out.result({ status: "up", ...s }, () => {
    out.success(`ccpd ${s.version} is up at ${s.url}`);
    if (!s.isolation || !s.default_limits) {
      out.note("Default limits and isolation: not shown (log in with the admin key: `ccp login`).");
      return;
    }
    const d = s.default_limits;
    out.line();
    out.fields([
      ["Runtime", s.runtime ?? "unknown"],
      ["Default limits", ["memory", "cpu", "storage", "connections", "pids", "io"].map((n) => `${n} ${d[n] === undefined ? "unlimited" : shown(n, d[n])}`).join(", ")],
    ]);
    out.line();
    out.table(
      [
        { name: "ISOLATION", align: "left" },
        { name: "IN FORCE", align: "left" },
        { name: "HOW, OR WHY NOT", align: "left" },
      ],
      s.isolation.map((f) => [f.name, f.enforced ? "yes" : "NO", f.detail]),
    );
  });
}
