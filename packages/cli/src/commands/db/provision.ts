import type { ApiClient } from "../../api.js";
import type { Output } from "../../output.js";
import { PROJECT_CONFIG } from "../../project-config.js";
import { createDatabase, type CreateResult } from "./create.js";

/**
 * `ccp db provision NAME -U USER` (seed 003): a database whose owner role is
 * USER with the password given, instead of `clusterbase` with a random one.
 * The name, user and password rules are checked by the caller and again by ccpd.
 */
export function provisionDatabase(api: ApiClient, name: string, owner: string, password: string, cwd = process.cwd()): Promise<CreateResult> {
  return createDatabase(api, name, cwd, { owner, password });
}

export function printProvisioned(out: Output, r: CreateResult): void {
  if (out.json) return out.data({ database: r.database, token: r.token, database_url: r.databaseUrl, config_file: r.configFile });
  out.success(`Provisioned database ${out.style("bold", r.database.name)}`);
  out.line();
  out.fields([
    ["ID", r.database.id],
    ["Host", r.database.host],
    ["User", r.database.user],
    ["Database", r.database.database],
    ["Token", `${r.token.slice(0, 12)}...`],
  ]);
  out.line();
  out.success(`Token and DATABASE_URL saved to ${PROJECT_CONFIG}`);
}
