import { validateDatabaseName, type DatabaseView } from "@ccp/server/client-side";
import type { Command } from "commander";
import { ApiClient } from "../../api.js";
import { getDatabase } from "../../databases.js";
import { jsonOption } from "../../options.js";
import { Output } from "../../output.js";
import { PROJECT_CONFIG } from "../../project-config.js";

export function register(db: Command): Command {
  return db
    .command("restore")
    .description("point-in-time restore into a NEW database (the source and .cluster/config.json are untouched)")
    .argument("<id|name>", "the database to restore from")
    .requiredOption("-t, --time <timestamp>", "RFC 3339 instant inside the retention window, e.g. 2026-04-12T14:22:00Z")
    .requiredOption("-n, --name <new-name>", "name of the new database")
    .addOption(jsonOption())
    .action(async (ref: string, o: { time: string; name: string; json?: boolean }) => {
      validateDatabaseName(o.name); // fail fast, before contacting ccpd
      printPointInTimeRestore(Output.for(o), await restoreToPointInTime(new ApiClient(), ref, o.time, o.name));
    });
}

export interface PointInTimeRestore {
  readonly source: DatabaseView;
  /** The instant restored to, as ccpd understood it (UTC). */
  readonly time: string;
  readonly database: DatabaseView;
  readonly token: string;
  readonly password: string;
  readonly databaseUrl: string;
}

/**
 * `ccp db restore <id|name> -t <RFC 3339> -n <new-name>`: a NEW database
 * holding the source's state at that instant; the source is untouched.
 * ccpd checks the instant (format, not in the future, inside the restorable
 * window). The project's .cluster/config.json is left alone: it still points
 * at the source until the user switches with `ccp db use`.
 */
export async function restoreToPointInTime(api: ApiClient, ref: string, time: string, name: string): Promise<PointInTimeRestore> {
  const source = await getDatabase(api, ref);
  const r = await api.request<{ database: DatabaseView; token: string; password: string; database_url: string }>(
    "POST",
    `/v1/databases/${encodeURIComponent(source.id)}/restore`,
    { time, name },
  );
  // ccpd accepted it as RFC 3339, which Date reads once a space separator is a T.
  const at = new Date(time.trim().replace(" ", "T"));
  return {
    source,
    time: Number.isNaN(at.getTime()) ? time : at.toISOString(),
    database: r.database,
    token: r.token,
    password: r.password,
    databaseUrl: r.database_url,
  };
}

export function printPointInTimeRestore(out: Output, r: PointInTimeRestore): void {
  out.result({ source: r.source, time: r.time, database: r.database, token: r.token, password: r.password, database_url: r.databaseUrl }, () => {
    out.success(`Restored ${r.source.id} to ${r.time} as new database ${out.style("bold", r.database.name)}`);
    out.line();
    // In full: they are saved nowhere, and ccpd keeps only hashes.
    out.fields([
      ["ID", r.database.id],
      ["Host", r.database.host],
      ["Token", r.token],
      ["DATABASE_URL", r.databaseUrl],
    ]);
    out.line();
    out.note(`Save the token and DATABASE_URL now: they are not shown again, and ${PROJECT_CONFIG} was left unchanged.`);
    out.note(`Switch this project to the restored database with \`ccp db use ${r.database.name}\`; remove the old one later with \`ccp db destroy ${r.source.id}\`.`);
  });
}
