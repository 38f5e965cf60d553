import { INSIGHT_SORTS, isCcpError, LOG_LEVELS, parseLevel, parseSince, parseSuspendAfter, validateDatabaseName, validateOwnerRole, validateProvisionName, VERSION } from "@ccp/server/client-side";
// Commands that pull in much (the shell, migrations, the server) are imported when they run, so the CLI starts fast.
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { ApiClient } from "./api.js";
import {
  backupTarget,
  createBackup,
  deleteBackup,
  listBackups,
  printBackupCreated,
  printBackupDeleted,
  printBackupList,
  printBackupRestored,
  printBackupVerified,
  restoreBackup,
  verifyBackup,
} from "./commands/db/backup.js";
import { createBranch, listBranches, printBranchCreated, printBranchList, printBranchReset, resetBranch } from "./commands/db/branch.js";
import { createDatabase, printCreated } from "./commands/db/create.js";
import { destroyDatabase, printDestroyed } from "./commands/db/destroy.js";
import { databaseOption, execSql, printExec, readSql, resolveExecTarget } from "./commands/db/exec.js";
import { getDatabase, getDatabaseWithSecrets, printInfo } from "./commands/db/info.js";
import { listDatabases, printList } from "./commands/db/list.js";
import { DEFAULT_MIGRATIONS_DIR, parseSteps } from "./commands/db/migration-options.js";
import { printProvisioned, provisionDatabase } from "./commands/db/provision.js";
import { printPointInTimeRestore, restoreToPointInTime } from "./commands/db/restore.js";
import { printPasswordReset, resetPassword } from "./commands/db/reset-password.js";
import { databaseStatus, printDatabaseStatus } from "./commands/db/status.js";
import { printInsights, resetInsights, statementInsights } from "./commands/db/insights.js";
import { databaseTarget, followLogs, printLogs, readLogs } from "./commands/db/logs.js";
import { issueMetricsToken, printMetricsToken } from "./commands/server/metrics-token.js";
import { printSuspended, suspendDatabase } from "./commands/db/suspend.js";
import { printRotated, rotateToken } from "./commands/db/token.js";
import { printUpdated, updateDatabase } from "./commands/db/update.js";
import { printUse, useDatabase } from "./commands/db/use.js";
import { printWoken, wakeDatabase } from "./commands/db/wake.js";
import { login, printLogin } from "./commands/login.js";
import { printStatus, serverStatus } from "./commands/server/status.js";
import { CliError, EXIT, usageError } from "./errors.js";
import { Output } from "./output.js";
import { readNewPassword } from "./password-input.js";

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError("expected a port number (0–65535).");
  return n;
}

const jsonOption = () => new Option("--json", "print JSON instead of text");

function backupAt(value: string): string {
  if (value !== "off" && !/^([01]\d|2[0-3]):[0-5]\d$/.test(value)) throw new InvalidArgumentError('expected HH:MM (UTC) or "off".');
  return value;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError("expected a whole number of at least 1.");
  return n;
}

/** Checked here with the server's own parser, so a typo fails before contacting ccpd. */
function sinceOption(value: string): string {
  try {
    parseSince(value);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message} ${isCcpError(err) ? (err.hint ?? "") : ""}`.trim());
  }
  return value;
}

/** A suspend timeout ("30s", "5m", "2h", "never"), checked before contacting ccpd. */
function suspendAfter(value: string): string {
  try {
    parseSuspendAfter(value);
  } catch (err) {
    throw new InvalidArgumentError(isCcpError(err) ? err.message : String(err));
  }
  return value;
}

function levelOption(value: string): string {
  try {
    return parseLevel(value);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message} ${isCcpError(err) ? (err.hint ?? "") : ""}`.trim());
  }
}

function insightsLimit(value: string): number {
  const n = positiveInt(value);
  if (n > 1000) throw new InvalidArgumentError("expected at most 1000.");
  return n;
}

function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a whole number (0 or more).");
  return Number(value);
}

function output(opts: { json?: boolean }): Output {
  return new Output({ json: Boolean(opts.json) });
}

/** Build the `ccp` program. Each action sets `result` to the exit code. */
function program(result: { code: number }): Command {
  const ccp = new Command("ccp")
    .description("ccp: managed Postgres on your own machine")
    .version(VERSION)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    // `ccp run -- cmd --flags`: options after the command belong to it (passThroughOptions below).
    .enablePositionalOptions()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  const server = ccp.command("server").description("run and inspect ccpd, the control plane");
  server
    .command("start")
    .description("start ccpd in the foreground")
    .option("--data-dir <dir>", "where ccpd keeps its catalog and databases (default: $CCP_HOME, $XDG_DATA_HOME/ccp or ~/.local/share/ccp)")
    .option("--port <port>", "HTTP port: API and SQL over HTTP", port, 7070)
    .option("--wire-port <port>", "Postgres wire-protocol port", port, 6432)
    .option("--listen <address>", "address to listen on", "127.0.0.1")
    .option("--domain <domain>", "domain of database hosts (db-<id>.<domain>)", "localhost")
    .option("--catalog-url <url>", "external catalog Postgres (default: one ccpd runs in its data dir)")
    .option("--backup-at <HH:MM|off>", "daily base backup time of every database, UTC; off: manual backups only", backupAt, "00:00")
    .option("--backup-retention-days <days>", "days backups, and the WAL that point-in-time restore needs, are kept", positiveInt, 7)
    .option("--archive-timeout <seconds>", "force a WAL segment switch after this many seconds with writes (the most an idle database can lose)", positiveInt, 60)
    .option("--tls-cert <file>", "PEM certificate for the wire endpoint (default: self-signed, made on first start)")
    .option("--tls-key <file>", "PEM private key of --tls-cert")
    .option("--wire-max-connections <n>", "server connections per database through the wire endpoint", positiveInt, 50)
    .option("--statement-timeout <ms>", "default statement timeout of SQL over HTTP", positiveInt, 30_000)
    .option("--no-metrics", "do not serve /metrics nor count HTTP requests")
    .option("--suspend-after <duration>", "suspend a database idle this long (30s, 5m, 2h; never: keep running); per database: `ccp db update`", suspendAfter, "5m")
    .option("--wake-timeout <ms>", "how long a client is held while its database wakes before a retryable error", positiveInt, 8_000)
    .option("--warm-pool <n>", "Postgres servers kept pre-started for `ccp db create` (0: none)", nonNegativeInt, 2)
    .action(async (o: {
      metrics: boolean;
      dataDir?: string;
      port: number;
      wirePort: number;
      listen: string;
      domain: string;
      catalogUrl?: string;
      backupAt: string;
      backupRetentionDays: number;
      archiveTimeout: number;
      tlsCert?: string;
      tlsKey?: string;
      wireMaxConnections: number;
      statementTimeout: number;
      suspendAfter: string;
      wakeTimeout: number;
      warmPool: number;
    }) => {
      if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) throw usageError("--tls-cert and --tls-key go together.", "Pass both, or neither for a self-signed certificate.");
      const { runServer } = await import("./commands/server/start.js");
      result.code = await runServer(new Output(), {
        ...(o.dataDir ? { dataDir: o.dataDir } : {}),
        port: o.port,
        wirePort: o.wirePort,
        listen: o.listen,
        domain: o.domain,
        ...(o.catalogUrl ? { catalogUrl: o.catalogUrl } : {}),
        backupAt: o.backupAt,
        backupRetentionDays: o.backupRetentionDays,
        archiveTimeoutS: o.archiveTimeout,
        ...(o.tlsCert && o.tlsKey ? { tlsCert: o.tlsCert, tlsKey: o.tlsKey } : {}),
        wireMaxConnections: o.wireMaxConnections,
        statementTimeoutMs: o.statementTimeout,
        metrics: o.metrics,
        suspendAfter: o.suspendAfter,
        wakeTimeoutMs: o.wakeTimeout,
        warmPool: o.warmPool,
      });
    });
  server
    .command("status")
    .description("report whether ccpd is up")
    .addOption(jsonOption())
    .action(async (o: { json?: boolean }) => printStatus(output(o), await serverStatus(new ApiClient())));
  server
    .command("metrics-token")
    .description("issue a read-only token for GET /metrics (for a Prometheus scraper)")
    .addOption(jsonOption())
    .action(async (o: { json?: boolean }) => {
      const api = new ApiClient();
      printMetricsToken(output(o), await issueMetricsToken(api), api.target.apiUrl);
    });

  ccp
    .command("run")
    .description("run a command with DATABASE_URL, DATABASE_TOKEN and DATABASE_ID from .cluster/config.json")
    .argument("<command...>", "the command and its arguments (after --)")
    .passThroughOptions()
    .action(async (command: string[]) => {
      const { runWithDatabase } = await import("./commands/run.js");
      result.code = await runWithDatabase(command);
    });

  ccp
    .command("login")
    .description("save the API URL and admin key of a (remote) ccpd")
    .requiredOption("--api-url <url>", "ccpd's HTTP URL, e.g. http://127.0.0.1:7070")
    .requiredOption("--token <key>", "an admin API key of that ccpd")
    .addOption(jsonOption())
    .action(async (o: { apiUrl: string; token: string; json?: boolean }) => printLogin(output(o), await login(o.apiUrl, o.token)));

  const db = ccp.command("db").description("create and manage databases");
  db.command("create")
    .description("create a database (its own Postgres server) and save its token in .cluster/config.json")
    .requiredOption("--name <name>", "3–32 characters: lowercase letters, digits, - and _, starting with a letter")
    .option("--suspend-after <duration>", "suspend it after this long idle (30s, 5m, 2h, never; default: the server's)", suspendAfter)
    .addOption(jsonOption())
    .action(async (o: { name: string; suspendAfter?: string; json?: boolean }) => {
      validateDatabaseName(o.name); // fail fast, before contacting ccpd
      printCreated(output(o), await createDatabase(new ApiClient(), o.name, process.cwd(), undefined, o.suspendAfter === undefined ? {} : { suspendAfter: o.suspendAfter }));
    });
  db.command("provision")
    .description("create a database whose owner role and password you choose (password at a hidden prompt, or --password-stdin)")
    .argument("<name>", "3–16 characters: lowercase letters, digits and _")
    .requiredOption("-U, --username <username>", "owner role: 3–16 characters of lowercase letters, digits and _")
    .option("--password-stdin", "read the password from standard input instead of prompting")
    .addOption(jsonOption())
    .action(async (name: string, o: { username: string; passwordStdin?: boolean; json?: boolean }) => {
      // Fail fast, before asking for a password or contacting ccpd.
      validateProvisionName(name);
      validateOwnerRole(o.username);
      const password = await readNewPassword(o);
      printProvisioned(output(o), await provisionDatabase(new ApiClient(), name, o.username, password));
    });
  db.command("list")
    .alias("ls")
    .description("list databases")
    .addOption(jsonOption())
    .action(async (o: { json?: boolean }) => printList(output(o), await listDatabases(new ApiClient())));
  db.command("info")
    .description("show a database")
    .argument("<id|name>", "database id (db-…) or name")
    .option("--show-secrets", "also show the DATABASE_URL, password included")
    .addOption(jsonOption())
    .action(async (ref: string, o: { json?: boolean; showSecrets?: boolean }) => {
      if (!o.showSecrets) return printInfo(output(o), await getDatabase(new ApiClient(), ref));
      const r = await getDatabaseWithSecrets(new ApiClient(), ref);
      printInfo(output(o), r.database, r.databaseUrl);
    });
  db.command("status")
    .description("show a database's state, Postgres version, size, connections, uptime and last backup")
    .argument("<id|name>", "database id (db-…) or name")
    .addOption(jsonOption())
    .action(async (ref: string, o: { json?: boolean }) => printDatabaseStatus(output(o), await databaseStatus(new ApiClient(), ref)));
  db.command("logs")
    .description("show a database's Postgres log and platform events (default: the project's database)")
    .argument("[id|name]", "database id (db-…) or name (default: from .cluster/config.json)")
    .option("-f, --follow", "keep printing new entries until Ctrl+C")
    .option("--since <when>", "from this long ago (30s, 15m, 2h, 7d) or an RFC 3339 time", sinceOption, "1h")
    .option("--level <level>", `lowest level shown: ${LOG_LEVELS.join(", ")}`, levelOption, "log")
    .option("--limit <n>", "at most this many of the newest entries (before following)", positiveInt, 1000)
    .addOption(jsonOption())
    .action(async (ref: string | undefined, o: { follow?: boolean; since: string; level: string; limit: number; json?: boolean }) => {
      const { api, ref: target } = databaseTarget(ref);
      if (o.follow) {
        result.code = await followLogs(output(o), api, target, o);
        return;
      }
      printLogs(output(o), await readLogs(api, target, o));
    });
  db.command("insights")
    .description("statement statistics (pg_stat_statements): total and mean time, calls, rows, cache hit rate")
    .argument("[id|name]", "database id (db-…) or name (default: from .cluster/config.json)")
    .addOption(new Option("--sort <by>", "highest first by total time, mean time or calls").choices(INSIGHT_SORTS).default("total"))
    .option("--limit <n>", "how many statements (1–1000)", insightsLimit, 20)
    .option("--reset", "start the statistics afresh (prints nothing else)")
    .addOption(jsonOption())
    .action(async (ref: string | undefined, o: { sort: (typeof INSIGHT_SORTS)[number]; limit: number; reset?: boolean; json?: boolean }) => {
      const { api, ref: target } = databaseTarget(ref);
      if (o.reset) {
        await resetInsights(api, target);
        const out = output(o);
        if (out.json) out.data({ reset: true });
        else out.success("Statement statistics reset");
        return;
      }
      printInsights(output(o), await statementInsights(api, target, o), o.sort);
    });
  db.command("reset-password")
    .description("set a new password for the database's owner role (open sessions stay; new ones need it)")
    .argument("<id|name>", "database id (db-…) or name")
    .option("--password-stdin", "read the password from standard input instead of prompting")
    .addOption(jsonOption())
    .action(async (ref: string, o: { passwordStdin?: boolean; json?: boolean }) => {
      const password = await readNewPassword(o);
      printPasswordReset(output(o), await resetPassword(new ApiClient(), ref, password));
    });
  db.command("use")
    .description("point this directory's .cluster/config.json at a database (issues a new token unless --token)")
    .argument("<id|name>", "database id (db-…) or name")
    .option("--token <token>", "the database's current token (default: issue a new one; the previous one stops working)")
    .addOption(databaseOption())
    .addOption(jsonOption())
    .action(async (ref: string, o: { token?: string; database?: string; json?: boolean }) => printUse(output(o), await useDatabase(new ApiClient(), ref, o)));
  db.command("token")
    .description("manage a database's HTTP token")
    .command("rotate")
    .description("issue a new HTTP token; the previous one stops working at once")
    .option("--db-id <id>", "database id or name (default: from .cluster/config.json)")
    .addOption(jsonOption())
    .action(async (o: { dbId?: string; json?: boolean }) => printRotated(output(o), await rotateToken(new ApiClient(), o.dbId)));
  db.command("suspend")
    .description("suspend a database now (clean stop, last WAL archived); any query or connection wakes it")
    .argument("<id|name>", "database id (db-…) or name")
    .addOption(jsonOption())
    .action(async (ref: string, o: { json?: boolean }) => printSuspended(output(o), await suspendDatabase(new ApiClient(), ref)));
  db.command("wake")
    .description("start a suspended database now")
    .argument("<id|name>", "database id (db-…) or name")
    .addOption(jsonOption())
    .action(async (ref: string, o: { json?: boolean }) => printWoken(output(o), await wakeDatabase(new ApiClient(), ref)));
  db.command("update")
    .description("change a database's settings")
    .argument("<id|name>", "database id (db-…) or name")
    .requiredOption("--suspend-after <duration>", "idle time before it is suspended: 30s, 5m, 2h, never, or default (the server's)", (v: string) => (v === "default" ? v : suspendAfter(v)))
    .addOption(jsonOption())
    .action(async (ref: string, o: { suspendAfter: string; json?: boolean }) =>
      printUpdated(output(o), await updateDatabase(new ApiClient(), ref, { suspendAfter: o.suspendAfter === "default" ? null : o.suspendAfter })),
    );
  db.command("destroy")
    .alias("rm")
    .description("destroy a database and all its data")
    .argument("<id|name>", "database id (db-…) or name")
    .option("-y, --yes", "do not ask for confirmation")
    .addOption(jsonOption())
    .action(async (ref: string, o: { yes?: boolean; json?: boolean }) =>
      printDestroyed(output(o), await destroyDatabase(new ApiClient(), ref, { yes: Boolean(o.yes) })),
    );
  db.command("exec")
    .description("run SQL on the project's database (.cluster/config.json) and print the result")
    .argument("[sql]", "the SQL; omit it to read -f FILE or stdin")
    .option("-f, --file <file>", "read the SQL from a file (- for stdin)")
    .option("--db-id <id>", "database id (default: from .cluster/config.json; needs --token)")
    .option("--token <token>", "database token (default: from .cluster/config.json; needs --db-id)")
    .addOption(databaseOption())
    .addOption(jsonOption())
    .action(async (sql: string | undefined, o: { file?: string; dbId?: string; token?: string; database?: string; json?: boolean }) => {
      const target = resolveExecTarget(o);
      printExec(output(o), await execSql(target, await readSql(sql, o)));
    });
  db.command("connect")
    .description("open an interactive SQL shell on the project's database (with stdin piped: run the script, stop at the first error)")
    .argument("[id|name]", "the project's database (default: from .cluster/config.json)")
    .option("--db-id <id>", "database id (default: from .cluster/config.json; needs --token)")
    .option("--token <token>", "database token (default: from .cluster/config.json; needs --db-id)")
    .addOption(databaseOption())
    .action(async (ref: string | undefined, o: { dbId?: string; token?: string; database?: string }) => {
      const { runConnect } = await import("./commands/db/connect.js");
      result.code = await runConnect(new Output(), ref, o);
    });

  const backup = db.command("backup").description("base backups of a database (default: the project's, from .cluster/config.json)");
  const backupDbId = () => new Option("--db-id <id>", "database id or name (default: from .cluster/config.json)");
  type BackupOpts = { dbId?: string; json?: boolean };
  backup
    .command("create")
    .description("take a manual base backup now")
    .addOption(backupDbId())
    .addOption(jsonOption())
    .action(async (o: BackupOpts) => printBackupCreated(output(o), await createBackup(new ApiClient(), backupTarget(o.dbId))));
  backup
    .command("list")
    .alias("ls")
    .description("list backups, newest first")
    .addOption(backupDbId())
    .addOption(jsonOption())
    .action(async (o: BackupOpts) => printBackupList(output(o), await listBackups(new ApiClient(), backupTarget(o.dbId)), o.dbId));
  backup
    .command("restore")
    .description("replace the database's data with a backup's (id, host and token stay)")
    .argument("<backup>", "backup id (bkp-…)")
    .option("-y, --yes", "do not ask for confirmation")
    .addOption(backupDbId())
    .addOption(jsonOption())
    .action(async (backupId: string, o: BackupOpts & { yes?: boolean }) =>
      printBackupRestored(output(o), await restoreBackup(new ApiClient(), backupTarget(o.dbId), backupId, { yes: Boolean(o.yes) })),
    );
  backup
    .command("delete")
    .alias("rm")
    .description("delete a backup")
    .argument("<backup>", "backup id (bkp-…)")
    .addOption(backupDbId())
    .addOption(jsonOption())
    .action(async (backupId: string, o: BackupOpts) => printBackupDeleted(output(o), await deleteBackup(new ApiClient(), backupTarget(o.dbId), backupId)));
  backup
    .command("download")
    .description("download a backup as one tar archive that plain PostgreSQL of the same major version starts from")
    .argument("<backup>", "backup id (bkp-…)")
    .requiredOption("-o, --output <file>", "where to write the .tar")
    .addOption(backupDbId())
    .addOption(jsonOption())
    .action(async (backupId: string, o: BackupOpts & { output: string }) => {
      const { downloadBackup, printDownloaded } = await import("./commands/db/backup-download.js");
      printDownloaded(output(o), await downloadBackup(new ApiClient(), backupTarget(o.dbId), backupId, o.output));
    });
  backup
    .command("verify")
    .description("restore a backup into a scratch instance, check every file and that Postgres answers, then remove it")
    .argument("<backup>", "backup id (bkp-…)")
    .addOption(backupDbId())
    .addOption(jsonOption())
    .action(async (backupId: string, o: BackupOpts) => printBackupVerified(output(o), await verifyBackup(new ApiClient(), backupTarget(o.dbId), backupId)));
  db.command("restore")
    .description("point-in-time restore into a NEW database (the source and .cluster/config.json are untouched)")
    .argument("<id|name>", "the database to restore from")
    .requiredOption("-t, --time <timestamp>", "RFC 3339 instant inside the retention window, e.g. 2026-04-12T14:22:00Z")
    .requiredOption("-n, --name <new-name>", "name of the new database")
    .addOption(jsonOption())
    .action(async (ref: string, o: { time: string; name: string; json?: boolean }) => {
      validateDatabaseName(o.name); // fail fast, before contacting ccpd
      printPointInTimeRestore(output(o), await restoreToPointInTime(new ApiClient(), ref, o.time, o.name));
    });

  const branch = db.command("branch").description("branches: full copies of a database from now or an earlier instant, resettable, expiring");
  branch
    .command("create")
    .description("create a branch: a NEW database holding the parent's data at an instant (its own id, host, token and password)")
    .argument("<parent>", "the database to branch (id or name)")
    .requiredOption("--name <new>", "name of the new database")
    .option("--at <RFC3339|LSN>", "the instant: now (default), an RFC 3339 time inside the backup window, or an LSN such as 0/3000060")
    .option("--expires-at <time>", "RFC 3339 instant at which ccpd destroys the branch")
    .option("--ttl <duration>", "or a lifetime from now: 90s, 30m, 2h, 7d")
    .addOption(jsonOption())
    .action(async (parent: string, o: { name: string; at?: string; expiresAt?: string; ttl?: string; json?: boolean }) => {
      validateDatabaseName(o.name); // fail fast, before contacting ccpd
      printBranchCreated(output(o), await createBranch(new ApiClient(), parent, o.name, o));
    });
  branch
    .command("list")
    .alias("ls")
    .description("list branches (of one database, or all)")
    .argument("[parent]", "only the branches of this database")
    .addOption(jsonOption())
    .action(async (parent: string | undefined, o: { json?: boolean }) => printBranchList(output(o), await listBranches(new ApiClient(), parent)));
  branch
    .command("reset")
    .description("replace a branch's data with its parent's current state (id, host, token and password stay)")
    .argument("<branch>", "the branch (id or name)")
    .option("-y, --yes", "do not ask for confirmation")
    .addOption(jsonOption())
    .action(async (ref: string, o: { yes?: boolean; json?: boolean }) => printBranchReset(output(o), await resetBranch(new ApiClient(), ref, { yes: Boolean(o.yes) })));

  const dbTargetOptions = (c: Command) =>
    c
      .option("--db-id <id>", "database id (default: from .cluster/config.json; needs --token)")
      .option("--token <token>", "database token (default: from .cluster/config.json; needs --db-id)")
      .addOption(databaseOption());
  type MigrateOpts = { dir?: string; dbId?: string; token?: string; database?: string; status?: boolean; dryRun?: boolean; json?: boolean };
  const migrate = dbTargetOptions(
    db
      .command("migrate")
      .description("apply pending migrations/*.sql in order, each in one transaction, tracked in _ccp_migrations")
      .option("--dir <path>", "migrations directory", DEFAULT_MIGRATIONS_DIR),
  )
    .option("--status", "show which migrations are applied, pending or changed; apply nothing")
    .option("--dry-run", "list the migrations that would run; apply nothing")
    .addOption(jsonOption())
    .action(async (o: MigrateOpts) => {
      const { runMigrate } = await import("./commands/db/migrate.js");
      result.code = await runMigrate(output(o), o);
    });
  migrate
    .command("new")
    .description("create the next numbered migration file (NNN_<name>.sql)")
    .argument("<name>", "what it does, e.g. create_users")
    .option("--dir <path>", `migrations directory (default: ${DEFAULT_MIGRATIONS_DIR})`)
    .addOption(jsonOption())
    .action(async (name: string, o: { dir?: string; json?: boolean }) => {
      // Unless options are positional, commander hands --dir/--json after `new` to migrate, which defines them too.
      const parent = migrate.opts<{ dir: string; json?: boolean }>();
      const { createMigration, printNewMigration } = await import("./commands/db/migrate.js");
      printNewMigration(output({ json: o.json ?? parent.json }), createMigration(o.dir ?? parent.dir, name));
    });
  dbTargetOptions(
    db
      .command("rollback")
      .description("revert the last applied migrations with their NNN_name.down.sql files")
      .option("--steps <n>", "how many migrations to revert", parseSteps, 1)
      .option("--dir <path>", "migrations directory", DEFAULT_MIGRATIONS_DIR),
  )
    .addOption(jsonOption())
    .action(async (o: { dir?: string; dbId?: string; token?: string; database?: string; steps: number; json?: boolean }) => {
      const { runRollback } = await import("./commands/db/rollback.js");
      result.code = await runRollback(output(o), o);
    });

  return ccp;
}

/**
 * The reader went away (`ccp db list | head -1`): stop quietly, as Unix tools
 * do, instead of an unhandled EPIPE. Exit 0 like `yes | head` from a shell's
 * view: the output that was wanted was delivered.
 */
export function exitQuietlyOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE" || err.code === "ERR_STREAM_DESTROYED") process.exit(0);
    throw err;
  });
}

/** Run the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnClosedPipe(process.stdout);
  exitQuietlyOnClosedPipe(process.stderr);
  const result = { code: EXIT.ok as number };
  const out = new Output();
  try {
    await program(result).parseAsync(argv);
    return result.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; usage errors were already printed by commander
      return err.exitCode === 0 ? 0 : EXIT.usage;
    }
    if (err instanceof CliError) {
      out.error(err.message, err.hint);
      return err.exitCode;
    }
    if (isCcpError(err)) {
      const mapped = new CliError(err.code, err.message, { hint: err.hint });
      out.error(mapped.message, mapped.hint);
      return mapped.exitCode;
    }
    out.error(`Unexpected error: ${(err as Error).message ?? String(err)}`, "This is a bug in ccp; please report it with the command you ran.");
    return EXIT.failure;
  }
}
