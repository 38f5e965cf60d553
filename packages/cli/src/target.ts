import { ApiClient, resolveApiTarget } from "./api.js";
import { usageError } from "./errors.js";
import { PROJECT_CONFIG, readProjectConfig } from "./project-config.js";

/**
 * Which database a command is for, from its flags and the project's
 * .cluster/config.json: one place for the rules every command follows.
 */

/** Where SQL goes (`db exec`, `db connect`, `db migrate`, `db rollback`): the gateway of one database, with its token. */
export interface ExecTarget {
  readonly apiUrl: string;
  readonly databaseId: string;
  readonly token: string;
  /** Postgres database inside the instance (`--database`, else the project's); undefined: the instance's `default`. */
  readonly database?: string | undefined;
  /** Where the credentials came from, for hints. */
  readonly source: "flags" | "project";
}

/**
 * `--db-id` and `--token` together, or neither and the project's
 * .cluster/config.json; the API URL then comes from the project, else from the
 * user config (CCP_API_URL / `ccp login`).
 */
export function resolveExecTarget(
  flags: { dbId?: string | undefined; token?: string | undefined; database?: string | undefined },
  cwd = process.cwd(),
  env: NodeJS.ProcessEnv = process.env,
): ExecTarget {
  if (flags.dbId !== undefined || flags.token !== undefined) {
    if (!flags.dbId || !flags.token) {
      throw usageError(
        `--db-id and --token go together: pass ${flags.dbId ? "--token" : "--db-id"} as well.`,
        `Or pass neither to use the database in ${PROJECT_CONFIG}.`,
      );
    }
    return { apiUrl: resolveApiTarget(env).apiUrl, databaseId: flags.dbId, token: flags.token, database: flags.database, source: "flags" };
  }
  const project = readProjectConfig(cwd);
  if (!project?.databaseId || !project.token) {
    throw usageError(
      `No database for this directory: ${PROJECT_CONFIG} not found.`,
      "Create one here with `ccp db create --name my-app-db`, or pass --db-id and --token.",
    );
  }
  return {
    apiUrl: (project.apiUrl || resolveApiTarget(env).apiUrl).replace(/\/+$/, ""),
    databaseId: project.databaseId,
    token: project.token,
    database: flags.database ?? project.database,
    source: "project",
  };
}

/**
 * The database a per-database API command is for (`db logs`, `db insights`):
 * the argument, else the project's (.cluster/config.json). Without an admin
 * key, the project's database token is used: it reads only its own database.
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

/**
 * The database a `ccp db backup …` command targets: `--db-id`, else the
 * project's (.cluster/config.json).
 */
export function backupTarget(dbId: string | undefined, cwd = process.cwd()): string {
  const ref = dbId ?? readProjectConfig(cwd)?.databaseId;
  if (!ref) {
    throw usageError(`No database to back up: no --db-id, and no ${PROJECT_CONFIG} here.`, "Run it in the project directory, or pass --db-id <id>.");
  }
  return ref;
}
