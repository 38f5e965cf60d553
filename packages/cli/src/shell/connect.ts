import { ApiClient, resolveApiTarget } from "../api.js";
import { getDatabase } from "../databases.js";
import { CliError, EXIT, usageError, type ExitCode } from "../errors.js";
import { execSql } from "../execute.js";
import type { Output } from "../output.js";
import { PROJECT_CONFIG, readProjectConfig } from "../project-config.js";
import { resolveExecTarget, type ExecTarget } from "../target.js";
import { printer, runInteractive, runScript, type HeaderInfo } from "./repl.js";
import { Session } from "./session.js";

/** `ccp db connect`: the work, loaded when the command runs (commands/db/connect.ts registers it). */

export interface ConnectOptions {
  readonly dbId?: string | undefined;
  readonly token?: string | undefined;
  /** A Postgres database of the instance other than its default. */
  readonly database?: string | undefined;
}

const TARGET_HINT = "The shell needs the database's token: run it in the project directory whose .cluster/config.json has it, or pass --db-id <id> --token <token> (the token `ccp db create` printed).";

/**
 * The database `ccp db connect [id|name]` opens: the project's (or --db-id
 * with --token). An id or name given must be that database, since only the
 * project config holds a token.
 */
export function resolveConnectTarget(ref: string | undefined, flags: ConnectOptions, cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): ExecTarget {
  const target = resolveExecTarget(flags, cwd, env);
  if (ref === undefined) return target;
  if (target.source === "flags") {
    if (ref !== target.databaseId) throw usageError(`${ref} is not the database given with --db-id (${target.databaseId}).`, "Pass the id either way, or both the same.");
    return target;
  }
  const project = readProjectConfig(cwd);
  if (ref !== target.databaseId && ref !== project?.name) {
    throw new CliError("not_found", `${ref} is not this project's database: ${PROJECT_CONFIG} is for ${project?.name ?? "?"} (${target.databaseId}).`, {
      hint: TARGET_HINT,
      exitCode: EXIT.notFound,
    });
  }
  return target;
}

/** Database name and host for the header: from the project config, else from ccpd (admin key), else what the gateway says. */
async function headerInfo(target: ExecTarget, cwd: string, env: NodeJS.ProcessEnv): Promise<HeaderInfo> {
  const project = readProjectConfig(cwd);
  if (project?.databaseId === target.databaseId && project.host) {
    return { databaseId: target.databaseId, database: target.database ?? (project.database || "default"), host: project.host };
  }
  try {
    const d = await getDatabase(new ApiClient(resolveApiTarget(env)), target.databaseId);
    return { databaseId: target.databaseId, database: target.database ?? d.database, host: d.host };
  } catch {
    const r = await execSql(target, "SELECT pg_catalog.current_database() AS db");
    return { databaseId: target.databaseId, database: String(r.result.rows?.[0]?.["db"] ?? "default"), host: target.apiUrl };
  }
}

/**
 * `ccp db connect`: the interactive SQL shell on a terminal; with stdin piped,
 * the statements of the script, stopping at the first error.
 */
export async function runConnect(out: Output, ref: string | undefined, flags: ConnectOptions, cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): Promise<ExitCode> {
  const target = resolveConnectTarget(ref, flags, cwd, env);
  const interactive = Boolean(process.stdin.isTTY);
  const base = { target, out, print: printer(out, env), columns: () => (process.stdout.isTTY ? process.stdout.columns : undefined) };
  if (!interactive) return runScript(new Session({ ...base, expanded: "off", database: target.database ?? "default" }));
  // Fails here, before the prompt, when ccpd is down or the token is wrong.
  await execSql(target, "SELECT 1");
  const header = await headerInfo(target, cwd, env);
  return runInteractive(new Session({ ...base, expanded: "auto", database: header.database }), { out, header, env });
}
