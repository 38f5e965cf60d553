import { isCcpError, parseSuspendAfter } from "@ccp/server/client-side";
import { type Command, InvalidArgumentError, Option } from "commander";
import { usageError } from "./errors.js";

/**
 * Options and argument parsers that several commands share. An option only one
 * command has is declared in that command's file. This module is loaded for
 * every run of `ccp`: keep it light.
 */

/** `--json` on every command that prints data; `Output.for(opts)` reads it. */
export const jsonOption = (): Option => new Option("--json", "print JSON instead of text");

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError("expected a whole number of at least 1.");
  return n;
}

/** A suspend timeout ("30s", "5m", "2h", "never"), checked with the server's own parser before contacting ccpd. */
export function suspendAfter(value: string): string {
  try {
    parseSuspendAfter(value);
  } catch (err) {
    throw new InvalidArgumentError(isCcpError(err) ? err.message : String(err));
  }
  return value;
}

/**
 * `--database <name>`: which Postgres database inside the instance a command
 * uses (seed 003's app_db_name). Every command that talks to a database adds
 * it; resolveExecTarget() folds it into the target, and createClient() takes
 * it as its `database` option.
 */
export const databaseOption = (): Option =>
  new Option("--database <name>", "Postgres database inside the instance (default: the project's, else default)").argParser((value: string) => {
    if (value === "" || value.length > 63) throw new InvalidArgumentError("expected a Postgres database name of 1–63 characters.");
    return value;
  });

/** `--db-id`, `--token` and `--database`: the options resolveExecTarget() reads. */
export function sqlTargetOptions(command: Command): Command {
  return command
    .option("--db-id <id>", "database id (default: from .cluster/config.json; needs --token)")
    .option("--token <token>", "database token (default: from .cluster/config.json; needs --db-id)")
    .addOption(databaseOption());
}

/** The migrations directory of `db migrate`, `db migrate new` and `db rollback`. */
export const DEFAULT_MIGRATIONS_DIR = "migrations";

/** `--steps` of `db rollback`: a positive integer. */
export function parseSteps(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw usageError(`--steps takes a positive whole number, got "${value}".`);
  return n;
}

/** `--db-id` of the `ccp db backup …` commands; backupTarget() reads it. */
export const backupDbIdOption = (): Option => new Option("--db-id <id>", "database id or name (default: from .cluster/config.json)");
