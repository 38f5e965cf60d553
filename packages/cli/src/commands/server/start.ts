import { isCcpError, userConfigPath, VERSION } from "@ccp/server/client-side";
import type { ServerOptions } from "@ccp/server";
import { type Command, InvalidArgumentError } from "commander";
import type { CliRun } from "../../command.js";
import { CliError, EXIT, usageError } from "../../errors.js";
import { limitOptions, positiveInt, suspendAfter } from "../../options.js";
import { Output } from "../../output.js";

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError("expected a port number (0–65535).");
  return n;
}

function backupAt(value: string): string {
  if (value !== "off" && !/^([01]\d|2[0-3]):[0-5]\d$/.test(value)) throw new InvalidArgumentError('expected HH:MM (UTC) or "off".');
  return value;
}

function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a whole number (0 or more).");
  return Number(value);
}

interface StartFlags {
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
  defaultMemory?: string;
  defaultCpu?: string;
  defaultStorage?: string;
  defaultConnections?: string;
  defaultPids?: string;
  defaultIo?: string;
}

/** --default-<limit> flags as ServerOptions.defaultLimits ("none": unlimited); unset ones come from CCP_DEFAULT_* or the built-in defaults. */
function defaultLimitsFrom(o: StartFlags): NonNullable<ServerOptions["defaultLimits"]> {
  const given: [string, string | undefined][] = [
    ["memory", o.defaultMemory],
    ["cpu", o.defaultCpu],
    ["storage", o.defaultStorage],
    ["connections", o.defaultConnections],
    ["pids", o.defaultPids],
    ["io", o.defaultIo],
  ];
  return Object.fromEntries(given.filter(([, v]) => v !== undefined).map(([k, v]) => [k, v === "none" ? null : v]));
}

export function register(server: Command, run: CliRun): Command {
  return limitOptions(server.command("start"), false, "default-")
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
    .action(async (o: StartFlags) => {
      if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) throw usageError("--tls-cert and --tls-key go together.", "Pass both, or neither for a self-signed certificate.");
      run.code = await runServer(new Output(), {
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
        defaultLimits: defaultLimitsFrom(o),
      });
    });
}

/** `ccp server start` (and `npm start`): run ccpd in the foreground until SIGINT/SIGTERM. */
export async function runServer(out: Output, options: ServerOptions): Promise<number> {
  // Loaded here, not at the top: only this command needs Fastify, pg and pino (every other command starts as fast as Node).
  const { resolveServerConfig, startServer } = await import("@ccp/server");
  const config = resolveServerConfig(options);
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EADDRINUSE") {
      throw new CliError("port_in_use", `Port ${config.port} on ${config.listen} is already in use.`, {
        hint: "Is ccpd already running (`ccp server status`)? Otherwise pass another --port.",
        exitCode: EXIT.unavailable,
      });
    }
    // A refusal with a reason (another ccpd on the data dir: conflict) keeps its exit code.
    if (isCcpError(err)) throw new CliError(err.code, `ccpd could not start: ${err.message}`, { hint: err.hint ?? `Data dir: ${config.dataDir}` });
    throw new CliError("start_failed", `ccpd could not start: ${e.message}`, { hint: `Data dir: ${config.dataDir}` });
  }
  out.line(`${out.style("green", "✓")} ccpd ${VERSION} is up`);
  out.line();
  out.fields([
    ["API + SQL over HTTP", server.url],
    ["Postgres protocol", `${config.listen}:${server.wirePort} (TLS certificate: ${server.tlsCertFile})`],
    ["Data dir", config.dataDir],
    ["Domain", config.domain],
    ...(config.catalogUrl ? [["Catalog", "external (--catalog-url)"] as [string, string]] : []),
  ]);
  out.line();
  if (server.createdAdminKey) out.success(`Admin API key created and saved to ${userConfigPath()}`);
  out.note("Stop with Ctrl+C; running databases stop cleanly and come back on the next start.");

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      out.note(`\n${signal}: stopping databases…`);
      void server.close().then(resolve);
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  out.note("ccpd stopped.");
  return 0;
}
