import type { Command } from "commander";
import * as create from "./create.js";
import * as list from "./list.js";
import * as reset from "./reset.js";

/** `ccp db branch …`: full copies of a database, resettable, expiring. */
export function register(db: Command): Command {
  const branch = db.command("branch").description("branches: full copies of a database from now or an earlier instant, resettable, expiring");
  for (const c of [create, list, reset]) c.register(branch);
  return branch;
}
