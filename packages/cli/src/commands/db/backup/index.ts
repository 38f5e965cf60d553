import type { Command } from "commander";
import * as create from "./create.js";
import * as del from "./delete.js";
import * as download from "./download.js";
import * as list from "./list.js";
import * as restore from "./restore.js";
import * as verify from "./verify.js";

/** `ccp db backup …`: base backups of a database. */
export function register(db: Command): Command {
  const backup = db.command("backup").description("base backups of a database (default: the project's, from .cluster/config.json)");
  for (const c of [create, list, restore, del, download, verify]) c.register(backup);
  return backup;
}
