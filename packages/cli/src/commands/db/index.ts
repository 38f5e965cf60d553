import type { Command } from "commander";
import type { CliRun } from "../../command.js";
import * as backup from "./backup/index.js";
import * as branch from "./branch/index.js";
import * as connect from "./connect.js";
import * as create from "./create.js";
import * as destroy from "./destroy.js";
import * as exec from "./exec.js";
import * as info from "./info.js";
import * as insights from "./insights.js";
import * as limits from "./limits.js";
import * as list from "./list.js";
import * as logs from "./logs.js";
import * as migrateNew from "./migrate-new.js";
import * as migrate from "./migrate.js";
import * as provision from "./provision.js";
import * as resetPassword from "./reset-password.js";
import * as restore from "./restore.js";
import * as rollback from "./rollback.js";
import * as status from "./status.js";
import * as suspend from "./suspend.js";
import * as token from "./token/index.js";
import * as update from "./update.js";
import * as use from "./use.js";
import * as wake from "./wake.js";

/** `ccp db …`: create and manage databases. */
export function register(ccp: Command, run: CliRun): Command {
  const db = ccp.command("db").description("create and manage databases");
  for (const c of [create, provision, list, info, status, logs, insights, resetPassword, use, token, suspend, wake, update, limits, destroy, exec, connect, backup, restore, branch]) {
    c.register(db, run);
  }
  migrateNew.register(migrate.register(db, run));
  rollback.register(db, run);
  return db;
}
