import type { DatabaseView } from "@ccp/server/client-side";
import type { ApiClient } from "../../api.js";
import type { Output } from "../../output.js";
import { PROJECT_CONFIG } from "../../project-config.js";
import { getDatabase } from "./info.js";

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
  if (out.json) {
    return out.data({ source: r.source, time: r.time, database: r.database, token: r.token, password: r.password, database_url: r.databaseUrl });
  }
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
}
