import { validateDatabaseName, type LimitName } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { createDatabase, type CreateResult } from "../../databases.js";
import { jsonOption, limitOptions, limitsFrom, suspendAfter } from "../../options.js";
import { Output } from "../../output.js";
import { PROJECT_CONFIG } from "../../project-config.js";

export function register(db: Command): Command {
  return limitOptions(db.command("create"))
    .description("create a database (its own Postgres server) and save its token in .cluster/config.json")
    .requiredOption("--name <name>", "3–32 characters: lowercase letters, digits, - and _, starting with a letter")
    .option("--suspend-after <duration>", "suspend it after this long idle (30s, 5m, 2h, never; default: the server's)", suspendAfter)
    .addOption(jsonOption())
    .action(async (o: { name: string; suspendAfter?: string; json?: boolean } & Partial<Record<LimitName, string>>) => {
      validateDatabaseName(o.name); // fail fast, before contacting ccpd
      const limits = limitsFrom(o);
      const settings = { ...(o.suspendAfter === undefined ? {} : { suspendAfter: o.suspendAfter }), ...(Object.keys(limits).length > 0 ? { limits } : {}) };
      printCreated(Output.for(o), await createDatabase(new ApiClient(), o.name, process.cwd(), undefined, settings));
    });
}

export function printCreated(out: Output, r: CreateResult): void {
  out.result({ database: r.database, token: r.token, database_url: r.databaseUrl, config_file: r.configFile }, () => {
    out.success(`Created database ${out.style("bold", r.database.name)}`);
    out.line();
    out.fields([
      ["ID", r.database.id],
      ["Host", r.database.host],
      ["Token", `${r.token.slice(0, 12)}...`],
    ]);
    out.line();
    out.success(`Token saved to ${PROJECT_CONFIG}`);
  });
}
