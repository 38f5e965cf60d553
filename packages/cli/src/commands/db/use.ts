import { createClient, CcpError } from "@ccp/client";
import type { DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { getDatabaseWithSecrets, issueToken } from "../../databases.js";
import { CliError } from "../../errors.js";
import { databaseOption, jsonOption } from "../../options.js";
import { Output } from "../../output.js";
import { PROJECT_CONFIG, projectConfigFor, writeProjectConfig } from "../../project-config.js";

export function register(db: Command): Command {
  return db
    .command("use")
    .description("point this directory's .cluster/config.json at a database (issues a new token unless --token)")
    .argument("<id|name>", "database id (db-…) or name")
    .option("--token <token>", "the database's current token (default: issue a new one; the previous one stops working)")
    .addOption(databaseOption())
    .addOption(jsonOption())
    .action(async (ref: string, o: { token?: string; database?: string; json?: boolean }) => printUse(Output.for(o), await useDatabase(new ApiClient(), ref, o)));
}

export interface UseResult {
  readonly database: DatabaseView;
  readonly token: string;
  /** True when a new token was issued (no --token): the previous one no longer works. */
  readonly rotated: boolean;
  readonly configFile: string;
}

/**
 * `ccp db use <id|name>`: point this directory's .cluster/config.json at a
 * database, so later commands here target it. ccpd keeps only a hash of the
 * HTTP token, so unless `--token` is given a new one is issued, and the
 * previous token stops working. `--database` picks the Postgres database
 * inside the instance that commands here use.
 */
export async function useDatabase(api: ApiClient, ref: string, options: { token?: string | undefined; database?: string | undefined }, cwd = process.cwd()): Promise<UseResult> {
  const { database, databaseUrl } = await getDatabaseWithSecrets(api, ref);
  let token = options.token;
  if (token !== undefined) {
    await checkToken(api.target.apiUrl, database.id, token);
  } else {
    token = (await issueToken(api, database.id)).token;
  }
  const dbName = options.database ?? database.database;
  const configFile = writeProjectConfig(
    projectConfigFor(database, { token, apiUrl: api.target.apiUrl, databaseUrl: withDatabaseName(databaseUrl, dbName), database: dbName }),
    cwd,
  );
  return { database, token, rotated: options.token === undefined, configFile };
}

/** The DATABASE_URL with another database name in its path. */
function withDatabaseName(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** A token given with --token must work before it is saved: a wrong one would only fail later, elsewhere. */
async function checkToken(apiUrl: string, databaseId: string, token: string): Promise<void> {
  try {
    await createClient({ url: apiUrl, databaseId, token }).query("SELECT 1");
  } catch (err) {
    if (err instanceof CcpError && err.code === "unauthorized") {
      throw new CliError("unauthorized", `The token given with --token is not valid for ${databaseId}.`, {
        hint: `Omit --token to issue a new one (the previous token then stops working), or use \`ccp db token rotate --db-id ${databaseId}\`.`,
      });
    }
    // Not ready or unreachable: the token could not be checked, which is not a reason to refuse it.
  }
}

export function printUse(out: Output, r: UseResult): void {
  out.result({ database: r.database, token: r.token, token_rotated: r.rotated, config_file: r.configFile }, () => {
    out.success(`Using database ${out.style("bold", r.database.name)} (${r.database.id}) in this directory`);
    if (r.rotated) out.note(`${out.style("yellow", "!")} A new token was issued; the previous token stops working.`);
    out.success(`Connection details saved to ${PROJECT_CONFIG}`);
  });
}
