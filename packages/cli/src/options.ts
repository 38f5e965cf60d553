import { formatSize, isCcpError, LIMIT_NAMES, parseLimits, parseSuspendAfter, type LimitName, type LimitView } from "@ccp/server/client-side";
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

const LIMIT_HELP: Readonly<Record<LimitName, string>> = {
  memory: "memory limit, e.g. 512MiB or 2GiB (at least 128MiB)",
  cpu: "CPU quota in cores, e.g. 0.5",
  storage: "storage for data + WAL, e.g. 10GiB; past it the database turns read-only",
  connections: "client connections at once, 1–90",
  pids: "processes (Postgres's own included), at least connections + 25",
  io: "read and write bandwidth per second, e.g. 50MiB (cgroup v2 only)",
};

/**
 * --memory, --cpu, --storage, --connections, --pids, --io, each checked with the
 * server's own rules before contacting ccpd. `allowDefault`: the word "default"
 * puts a limit back to the server's default (ccp db limits).
 */
export function limitOptions(command: Command, allowDefault = false, flagPrefix = ""): Command {
  for (const name of LIMIT_NAMES) {
    const help = flagPrefix ? `default ${LIMIT_HELP[name]}; none: unlimited (env CCP_DEFAULT_${name.toUpperCase()})` : `${LIMIT_HELP[name]}${allowDefault ? "; default: the server's" : ""}`;
    command.option(`--${flagPrefix}${name} <value>`, help, (value: string) => {
      if (allowDefault && value === "default") return value;
      if (flagPrefix && value === "none") return value;
      try {
        parseLimits({ [name]: value });
      } catch (err) {
        throw new InvalidArgumentError(isCcpError(err) && err.hint ? `${err.message} ${err.hint}` : isCcpError(err) ? err.message : String(err));
      }
      return value;
    });
  }
  return command;
}

/** The limit options given, as the API takes them ("default" → null). */
export function limitsFrom(o: Partial<Record<LimitName, string>>): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const name of LIMIT_NAMES) {
    const v = o[name];
    if (v !== undefined) out[name] = v === "default" ? null : v;
  }
  return out;
}

/** A limit's value or usage in its unit: sizes with a binary unit, cpu in cores. */
export function formatLimitValue(name: LimitName, v: number | null): string {
  if (v === null) return "-";
  if (name === "memory" || name === "storage") return formatSize(v);
  if (name === "io") return `${formatSize(v)}/s`;
  if (name === "cpu") return `${Number(v.toFixed(2))} core${v === 1 ? "" : "s"}`;
  return String(v);
}

/** Rows of the limits table (info, db limits). */
export function limitRows(limits: readonly LimitView[]): string[][] {
  return limits.map((l) => [
    l.name,
    l.limit === null ? "unlimited" : formatLimitValue(l.name, l.limit),
    l.name === "cpu" && l.usage !== null ? `${l.usage.toFixed(1)} s total` : formatLimitValue(l.name, l.usage),
    l.source,
    l.limit === null ? "-" : l.enforced ? "yes" : "no",
    l.detail,
  ]);
}

export const LIMIT_COLUMNS = [
  { name: "LIMIT", align: "left" },
  { name: "VALUE", align: "right" },
  { name: "USAGE", align: "right" },
  { name: "SOURCE", align: "left" },
  { name: "ENFORCED", align: "left" },
  { name: "HOW", align: "left" },
] as const;
