import { DEFAULT_HTTP_LIMITS, type HttpLimits } from "./api/http-limits.js";
import { CcpError } from "./errors.js";
import { DEFAULT_GATEWAY_SETTINGS, type GatewaySettings } from "./gateway/gateway.js";
import { effectiveLimits, hostCapacity, LIMIT_FIELD, LIMIT_NAMES, parseLimits, type LimitName } from "./databases/limits.js";
import type { InstanceLimits } from "./runtime/driver.js";
import { TENANT_CONNECTION_SLOTS } from "./runtime/process/template.js";
import { parseSuspendAfter } from "./runtime/suspend-after.js";
import os from "node:os";
import path from "node:path";

export interface ServerOptions {
  dataDir?: string;
  port?: number;
  wirePort?: number;
  listen?: string;
  domain?: string;
  catalogUrl?: string;
  /** Default statement_timeout of SQL-over-HTTP sessions, in ms. */
  statementTimeoutMs?: number;
  /** Certificate and key (PEM files) for the wire endpoint's TLS; default: self-signed, made on first start. */
  tlsCert?: string;
  tlsKey?: string;
  /** Server connections per instance through the wire endpoint. */
  wireMaxConnections?: number;
  /** Daily base backup time "HH:MM" (UTC), or "off" to take none automatically. */
  backupAt?: string;
  /** Days backups (and the WAL they need) are kept. */
  backupRetentionDays?: number;
  /** archive_timeout in seconds: the most an idle-but-written database can lose. */
  archiveTimeoutS?: number;
  /** HTTP header/body/keep-alive timeouts and the bound on connections without a complete request. */
  http?: Partial<HttpLimits>;
  /** Serve /metrics and count HTTP requests (default true; `--no-metrics`). */
  metrics?: boolean;
  /** Default idle time before a database is suspended: "30s", "5m", "2h", "never" (default 5m). */
  suspendAfter?: string;
  /** How long a client is held while a suspended database wakes before a retryable error, in ms. */
  wakeTimeoutMs?: number;
  /** Postgres servers kept pre-started for creates (default 2; 0: none). */
  warmPool?: number;
  /**
   * "auto" (default): each database's Postgres runs as its own uid, in the sandbox, with its
   * limits in a cgroup, as far as the host allows; "off": none of it (env CCP_ISOLATION=off).
   */
  isolation?: "auto" | "off";
  /**
   * Limits of databases created without their own ("512MiB", 0.5, 50; null: unlimited).
   * Unset fields come from `CCP_DEFAULT_<NAME>` (e.g. CCP_DEFAULT_MEMORY=2GiB), else DEFAULT_LIMITS.
   */
  defaultLimits?: Partial<Record<LimitName, string | number | null>>;
  /** How often ccpd checks each running database's storage against its quota, in ms (default 10 s). */
  storageCheckMs?: number;
}

/**
 * Server defaults a managed service's smallest paid plan has: 1 GiB of memory,
 * one core, 10 GiB of storage, every client slot, 256 processes; I/O unlimited.
 * cpu and memory are capped at what the host has.
 */
export const DEFAULT_LIMITS: Readonly<Record<LimitName, string | number | null>> = Object.freeze({
  memory: "1GiB",
  cpu: 1,
  storage: "10GiB",
  connections: TENANT_CONNECTION_SLOTS,
  pids: 256,
  io: null,
});

/** The defaults in force: options over CCP_DEFAULT_* over DEFAULT_LIMITS, validated like a database's own. */
export function resolveDefaultLimits(options: ServerOptions["defaultLimits"] = {}, env: NodeJS.ProcessEnv = process.env): InstanceLimits {
  const host = hostCapacity();
  const merged: Record<string, unknown> = {};
  for (const name of LIMIT_NAMES) {
    const fromEnv = env[`CCP_DEFAULT_${name.toUpperCase()}`];
    let v: unknown = name in options ? options[name] : fromEnv !== undefined ? (fromEnv === "" || fromEnv === "none" ? null : fromEnv) : DEFAULT_LIMITS[name];
    // The built-in cpu/memory defaults never exceed the host (an explicit setting that does is refused).
    if (!(name in options) && fromEnv === undefined) {
      if (name === "cpu") v = Math.min(Number(v), host.cores);
      if (name === "memory") v = Math.min(1024 ** 3, Math.floor(host.memoryBytes / 2));
    }
    merged[name] = v;
  }
  let parsed;
  try {
    parsed = parseLimits(merged, host);
  } catch (err) {
    if (err instanceof CcpError) throw new CcpError("invalid_request", `Default limits: ${err.message}`, { hint: err.hint });
    throw err;
  }
  const out = effectiveLimits(parsed, {});
  for (const name of LIMIT_NAMES) if (parsed[name] === null) delete (out as Record<string, unknown>)[LIMIT_FIELD[name]];
  return out;
}

export interface ServerConfig {
  readonly dataDir: string;
  readonly port: number;
  readonly wirePort: number;
  readonly listen: string;
  readonly domain: string;
  /** External catalog; undefined: ccpd runs its own catalog Postgres in the data dir. */
  readonly catalogUrl: string | undefined;
  /** System user instances run as when ccpd is root. */
  readonly instanceUser: string;
  readonly gateway: Partial<GatewaySettings>;
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly wireMaxConnections: number;
  /** A wire client must finish start-up and authentication within this many ms. */
  readonly wireStartupTimeoutMs: number;
  readonly http: HttpLimits;
  /** Default suspend timeout in ms; null: never. */
  readonly suspendAfterMs: number | null;
  readonly wakeTimeoutMs: number;
  readonly warmPool: number;
  readonly isolation: "auto" | "off";
  /** uids given to databases (CCP_UID_RANGE="first-last"). */
  readonly uidRange: { readonly first: number; readonly count: number } | undefined;
  /** Limits of databases without their own (the driver's defaultLimits). */
  readonly defaultLimits: InstanceLimits;
  readonly storageCheckMs: number;
  readonly backups: { readonly dailyAt: string | undefined; readonly retentionDays: number; readonly archiveTimeoutS: number };
  /**
   * /metrics on or off; per-database readings reused for cacheMs; background
   * readings (TPS in status) every sampleEveryMs (0: off).
   */
  readonly metrics: { readonly enabled: boolean; readonly cacheMs: number; readonly sampleEveryMs: number };
  readonly env: NodeJS.ProcessEnv;
}

/** `$CCP_HOME`, else `$XDG_DATA_HOME/ccp`, else `~/.local/share/ccp`. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env["CCP_HOME"]) return env["CCP_HOME"];
  return path.join(env["XDG_DATA_HOME"] || path.join(os.homedir(), ".local", "share"), "ccp");
}

export function resolveServerConfig(options: ServerOptions = {}, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const wireMaxConnections = options.wireMaxConnections ?? 50;
  const poolSize = DEFAULT_GATEWAY_SETTINGS.poolSize;
  if (wireMaxConnections + poolSize > TENANT_CONNECTION_SLOTS) {
    // The gateway's pool and the wire sessions share the instance's connection slots; together they must fit.
    throw new CcpError(
      "invalid_request",
      `--wire-max-connections ${wireMaxConnections} is too high: with the SQL-over-HTTP gateway's ${poolSize} connections it exceeds the ${TENANT_CONNECTION_SLOTS} connections each database accepts from clients.`,
      { hint: `Use at most ${TENANT_CONNECTION_SLOTS - poolSize}.` },
    );
  }
  return Object.freeze({
    dataDir: path.resolve(options.dataDir ?? defaultDataDir(env)),
    port: options.port ?? 7070,
    wirePort: options.wirePort ?? 6432,
    listen: options.listen ?? "127.0.0.1",
    domain: options.domain ?? "localhost",
    catalogUrl: options.catalogUrl,
    instanceUser: env["CCP_INSTANCE_USER"] || "ccp",
    gateway: Object.freeze({ ...(options.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.statementTimeoutMs }) }),
    tls: options.tlsCert && options.tlsKey ? Object.freeze({ certFile: options.tlsCert, keyFile: options.tlsKey }) : undefined,
    wireMaxConnections,
    wireStartupTimeoutMs: 10_000,
    http: Object.freeze({ ...DEFAULT_HTTP_LIMITS, ...options.http }),
    suspendAfterMs: parseSuspendAfter(options.suspendAfter ?? "5m"),
    wakeTimeoutMs: options.wakeTimeoutMs ?? 8_000,
    warmPool: options.warmPool ?? 2,
    isolation: parseIsolation(options.isolation ?? env["CCP_ISOLATION"]),
    uidRange: parseUidRange(env["CCP_UID_RANGE"]),
    defaultLimits: Object.freeze(resolveDefaultLimits(options.defaultLimits, env)),
    storageCheckMs: options.storageCheckMs ?? 10_000,
    backups: Object.freeze({
      dailyAt: options.backupAt === "off" ? undefined : (options.backupAt ?? "00:00"),
      retentionDays: options.backupRetentionDays ?? 7,
      archiveTimeoutS: options.archiveTimeoutS ?? 60,
    }),
    metrics: Object.freeze({ enabled: options.metrics ?? true, cacheMs: 5_000, sampleEveryMs: 15_000 }),
    env,
  });
}

function parseIsolation(value: string | undefined): "auto" | "off" {
  if (value === undefined || value === "" || value === "auto") return "auto";
  if (value === "off") return "off";
  throw new CcpError("invalid_request", `Isolation "${value}" is not known.`, { hint: 'Use "auto" (the default) or "off" (CCP_ISOLATION=off).' });
}

function parseUidRange(value: string | undefined): { first: number; count: number } | undefined {
  if (value === undefined || value === "") return undefined;
  const m = /^(\d+)-(\d+)$/.exec(value.trim());
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1000 || last < first || last > 4_294_967_294) {
    throw new CcpError("invalid_request", `CCP_UID_RANGE="${value}" is not a range of uids.`, { hint: 'Give "first-last" above the system\'s own uids, e.g. CCP_UID_RANGE=900000-999999.' });
  }
  return { first, count: last - first + 1 };
}
