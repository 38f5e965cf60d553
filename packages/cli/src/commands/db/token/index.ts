import type { Command } from "commander";
import * as rotate from "./rotate.js";

/** `ccp db token …`: a database's HTTP token. */
export function register(db: Command): Command {
  const token = db.command("token").description("manage a database's HTTP token");
  rotate.register(token);
  return token;
}
