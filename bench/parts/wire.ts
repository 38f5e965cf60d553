import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { resolveServerConfig, startServer, type RunningServer } from "../../packages/server/dist/index.js";
import { resolveRunAs } from "../../packages/server/dist/runtime/process/system-user.js";
import type { PartOptions } from "../lib/part.ts";
import { runPgbench, type PgEnv } from "../lib/pgbench.ts";
import { retrying } from "../lib/retry.ts";
import { ensurePgBouncer, PgBouncer } from "../lib/pgbouncer.ts";
import { percentile } from "../lib/stats.ts";
import { renderGrid } from "../lib/table.ts";
import { forwarderKind } from "../../packages/server/dist/wire/forwarder.js";
import { makeDirFor, makeTempDir, removeDir, type Owner } from "../lib/tmp.ts";

const execFileAsync = promisify(execFile);

const SCALE = 1; // pgbench -i -s 1: 100,000 accounts, all in shared_buffers
const CLIENTS = [1, 16, 64] as const;
const WARMUP_SECONDS = 2;
/**
 * Runs per path and client count, in a rotated order each round (ccp, direct, PgBouncer; then direct,
 * PgBouncer, ccp; …), so a burst of other load on this shared machine lands on one round of one path,
 * not on a whole path. The row shown is each path's median-TPS round.
 */
const ROUNDS = 3;
/** ccpd's default is 50 server connections per instance through the wire endpoint; 64 clients need more. */
// The most the instance allows beside the gateway's pool (config.ts): 64 clients fit.
const WIRE_MAX_CONNECTIONS = 70;
const TENANT = { user: "clusterbase", database: "default" } as const;
const ADMIN = { user: "ccp_admin", database: "postgres" } as const;

type Path = "ccp" | "direct" | "pgbouncer";

interface Summary {
  readonly tps: number;
  /** CPU time of the proxy (ccpd's process, or pgbouncer's) per transaction, µs; undefined for the direct path. */
  readonly cpu: number | undefined;
  /** TPS of every round, in the order run. */
  readonly rounds: readonly number[];
  readonly mean: number;
  readonly p50: number;
  readonly p99: number;
  readonly n: number;
}

function summary(tps: number, latencies: readonly number[], cpu: number | undefined): Omit<Summary, "rounds"> {
  const sorted = [...latencies].sort((a, b) => a - b);
  if (sorted.length === 0) throw new Error("no transactions");
  return { tps, cpu, mean: sorted.reduce((s, x) => s + x, 0) / sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length };
}

/** CPU time (user + system) of a process, in µs, from /proc (clock ticks of 10 ms). */
function processCpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** The libpq environment of a postgresql:// URL (sslmode as given). */
function envOfUrl(url: string, sslmode: string): PgEnv {
  const u = new URL(url);
  return {
    PGHOST: u.hostname,
    PGPORT: u.port || "5432",
    PGUSER: decodeURIComponent(u.username),
    PGPASSWORD: decodeURIComponent(u.password),
    PGDATABASE: decodeURIComponent(u.pathname.slice(1)),
    PGSSLMODE: sslmode,
  };
}

function clientOf(env: PgEnv): pg.Client {
  return new pg.Client({
    host: env["PGHOST"],
    port: Number(env["PGPORT"]),
    user: env["PGUSER"],
    database: env["PGDATABASE"],
    ...(env["PGPASSWORD"] ? { password: env["PGPASSWORD"] } : {}),
  });
}

/** The same answer through a path before anything is timed (pgbench -i sets every abalance to 0). */
async function check(label: string, env: PgEnv): Promise<void> {
  const client = clientOf(env);
  await client.connect();
  try {
    const { rows } = await client.query<{ abalance: number; user: string }>("SELECT abalance, current_user AS user FROM pgbench_accounts WHERE aid = 42");
    if (JSON.stringify(rows) !== JSON.stringify([{ abalance: 0, user: TENANT.user }])) throw new Error(`${label} answered ${JSON.stringify(rows)}`);
  } finally {
    await client.end();
  }
}

/**
 * Let the OS user `runAs` log in as the tenant role over the instance's socket:
 * one line in the instance's pg_ident.conf (peer auth maps only ccpd's OS user),
 * then a reload. Returns the undo. Checked with psql run as that user.
 */
async function allowPeer(admin: pg.Client, runAs: Owner & { name: string }, socketDir: string, port: number): Promise<() => Promise<void>> {
  const { rows } = await admin.query<{ ident_file: string }>("SHOW ident_file");
  const file = rows[0]?.ident_file;
  if (!file) throw new Error("cannot read the instance's ident_file");
  const original = readFileSync(file, "utf8");
  const line = `ccp ${runAs.name} ${TENANT.user}`;
  writeFileSync(file, `${original}${original.endsWith("\n") ? "" : "\n"}${line}\n`);
  const undo = async () => {
    writeFileSync(file, original);
    await admin.query("SELECT pg_reload_conf()");
  };
  try {
    await admin.query("SELECT pg_reload_conf()");
    const psql = ["-X", "-q", "-A", "-t", "-h", socketDir, "-p", String(port), "-U", TENANT.user, "-d", TENANT.database, "-c", "SELECT current_user"];
    const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", LC_ALL: "C", HOME: "/nonexistent" };
    const deadline = Date.now() + 10_000;
    for (;;) {
      // The postmaster reloads asynchronously: retry until the new map is in force.
      const r = await execFileAsync("psql", psql, { uid: runAs.uid, gid: runAs.gid, env }).then(
        ({ stdout }) => stdout.trim(),
        (err: Error & { stderr?: string }) => err.stderr ?? err.message,
      );
      if (r === TENANT.user) break;
      if (Date.now() > deadline) throw new Error(`the OS user ${runAs.name} still cannot log in as ${TENANT.user} after adding "${line}" to ${file}: ${r}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (err) {
    await undo();
    throw err;
  }
  return undo;
}

/** Sessions of the tenant role on the instance (every path logs in as it; ccpd's own sessions are ccp_admin). */
async function backends(admin: pg.Client): Promise<number> {
  const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = $1", [TENANT.user]);
  return rows[0]?.n ?? 0;
}

/** Wait until the sessions of the previous run are gone, so each run has the instance's connection slots to itself. */
async function drained(admin: pg.Client, baseline: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  let n = await backends(admin);
  while (n > baseline) {
    if (Date.now() > deadline) throw new Error(`${n - baseline} sessions of the previous run still open after 15 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    n = await backends(admin);
  }
}

function forwarderDescription(): string {
  const f = forwarderKind();
  return f.kind === "native" ? `ccpd's native forwarder (native/forwarder.c) on ${f.engine}` : `Node streams in ccpd (native forwarder not in use: ${f.reason ?? "unknown"})`;
}

const num = (x: number, digits: number) => x.toFixed(digits);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

/**
 * `pgbench -S` on one instance through ccp's wire endpoint, against the
 * instance's unix socket (the reference) and PgBouncer (session pooling) in
 * front of the same instance, at 1, 16 and 64 clients.
 */
export async function wirePart({ duration }: PartOptions): Promise<void> {
  const bouncerBin = await ensurePgBouncer();
  const work = makeTempDir("ccp-bench-wire-");
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(work, "config"), CCP_LOG_LEVEL: process.env["CCP_LOG_LEVEL"] ?? "warn" };
  // pgbouncer refuses to run as root: as root, it runs as the system user instances run as.
  const runAs = resolveRunAs();
  const loadStart = os.loadavg()[0] ?? NaN;
  let server: RunningServer | undefined;
  let admin: pg.Client | undefined;
  let undoPeer: (() => Promise<void>) | undefined;
  let bouncer: PgBouncer | undefined;
  try {
    // Any free ports: another ccpd (a test run) may hold the defaults. No scheduled backups: a base backup
    // in the middle of a row would skew it. A variable, not a literal, so this also compiles against a ccpd
    // without backups (no backupAt option).
    const options = { dataDir: path.join(work, "data"), port: 0, wirePort: 0, wireMaxConnections: WIRE_MAX_CONNECTIONS, backupAt: "off" };
    server = await startServer(resolveServerConfig(options, env));
    const created = await server.databases.create("bench-wire");
    const { id } = created.database;
    if (created.database.status !== "ready") throw new Error(`${id}: created with status ${created.database.status}`);
    const { socketDir, port } = server.driver.endpoint(id);
    const direct: PgEnv = { PGHOST: socketDir, PGPORT: String(port), PGUSER: TENANT.user, PGDATABASE: TENANT.database };
    // TLS off on both TCP paths: pgbench's default sslmode=prefer would get TLS from ccp, not from this pgbouncer.
    const ccp = envOfUrl(created.database_url, "disable");

    // ccp_admin (a superuser, so in the reserved slots): checks and the pg_ident change; open for the whole part.
    admin = new pg.Client({ host: socketDir, port, ...ADMIN });
    await admin.connect();
    const settings = await admin.query<{ max: number; su: number; reserved: number | null }>(
      "SELECT current_setting('max_connections')::int AS max, current_setting('superuser_reserved_connections')::int AS su, current_setting('reserved_connections', true)::int AS reserved",
    );
    const { max, su, reserved } = settings.rows[0] as { max: number; su: number; reserved: number | null };
    const baseline = await backends(admin);
    const { rows: open } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'");
    const slots = max - su - (reserved ?? 0) - (open[0]?.n ?? 0);
    const most = Math.max(...CLIENTS);
    if (slots < most) throw new Error(`the instance has ${slots} connection slots for ${TENANT.user}, fewer than ${most} clients`);
    if (most > WIRE_MAX_CONNECTIONS) throw new Error(`${most} clients exceed wireMaxConnections ${WIRE_MAX_CONNECTIONS}`);

    await execFileAsync("pgbench", ["-i", "-q", "-s", String(SCALE)], { env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...direct } });
    await check("direct", direct);
    await check("ccp", ccp);

    let bouncerEnv: PgEnv | undefined;
    let startBouncer: (() => Promise<PgBouncer>) | undefined;
    if ("bin" in bouncerBin) {
      if (runAs) undoPeer = await allowPeer(admin, runAs, socketDir, port);
      const dir = makeDirFor(path.join(work, "pgbouncer"), runAs);
      const options = {
        bin: bouncerBin.bin,
        dir,
        runAs,
        server: { socketDir, port, database: TENANT.database, user: TENANT.user },
        client: { database: TENANT.database, user: TENANT.user, password: created.password },
        poolMode: "session" as const,
        poolSize: WIRE_MAX_CONNECTIONS,
      };
      startBouncer = () => PgBouncer.start(options);
      bouncer = await startBouncer();
      bouncerEnv = { PGHOST: "127.0.0.1", PGPORT: String(bouncer.port), PGUSER: TENANT.user, PGPASSWORD: created.password, PGDATABASE: TENANT.database, PGSSLMODE: "disable" };
      await check("pgbouncer", bouncerEnv);
      await bouncer.close();
      bouncer = undefined;
    }

    const warm = Math.min(WARMUP_SECONDS, duration);
    const results = new Map<number, Map<Path, Summary>>();
    /** Rounds that failed every attempt: reported under the table, left out of the medians. */
    const failed: string[] = [];
    const paths: [Path, PgEnv | undefined][] = [
      ["ccp", ccp],
      ["direct", direct],
      ["pgbouncer", bouncerEnv],
    ];
    for (const clients of CLIENTS) {
      const runs = new Map<Path, Omit<Summary, "rounds">[]>();
      for (let round = 0; round < ROUNDS; round++) {
        for (const [name, target] of [...paths.slice(round % paths.length), ...paths.slice(0, round % paths.length)]) {
          if (!target) continue;
          let connection = target;
          await drained(admin, baseline);
          // A fresh pgbouncer per run: stopping it closes its server connections, which would
          // otherwise hold instance slots through the next runs. The warm-up fills its pool.
          if (name === "pgbouncer" && startBouncer) {
            bouncer = await startBouncer();
            connection = { ...connection, PGPORT: String(bouncer.port) };
          }
          const run = (seconds: number) => runPgbench({ script: { builtin: "select-only" }, clients, seconds, logDir: work, connection, protocol: "simple" });
          // A warm-up that processed nothing (a loaded machine) is retried; it only warms up, so it never ends the bench.
          await retrying(`warm-up ${name} c=${clients}`, () => run(warm));
          // ccpd runs in this process (idle otherwise while pgbench runs); pgbouncer in its own.
          const bouncerPid = name === "pgbouncer" ? bouncer?.pid : undefined;
          const cpuBefore = name === "ccp" ? process.cpuUsage() : undefined;
          const bouncerBefore = bouncerPid ? processCpuMicros(bouncerPid) : 0;
          const r = await retrying(`${name} c=${clients} round ${round + 1}`, () => run(duration));
          if (!r) {
            failed.push(`${name} c=${clients} round ${round + 1}`);
            if (bouncer) {
              await bouncer.close();
              bouncer = undefined;
            }
            continue;
          }
          let cpu: number | undefined;
          if (cpuBefore) {
            const used = process.cpuUsage(cpuBefore);
            cpu = used.user + used.system;
          } else if (bouncerPid) {
            cpu = processCpuMicros(bouncerPid) - bouncerBefore;
          }
          const list = runs.get(name) ?? [];
          runs.set(name, list);
          list.push(summary(r.tps, r.latencies, cpu === undefined ? undefined : cpu / r.latencies.length));
          if (bouncer) {
            await bouncer.close();
            bouncer = undefined;
          }
        }
      }
      const row = new Map<Path, Summary>();
      for (const [name, list] of runs) {
        const median = [...list].sort((a, b) => a.tps - b.tps)[Math.floor((list.length - 1) / 2)] as Omit<Summary, "rounds">;
        row.set(name, { ...median, rounds: list.map((x) => x.tps) });
      }
      results.set(clients, row);
    }

    const { stdout: pgbenchVersion } = await execFileAsync("pgbench", ["--version"]);
    const bouncerName = "bin" in bouncerBin ? `PgBouncer ${bouncerBin.version}` : "PgBouncer";
    const LABELS: Record<Path, string> = {
      ccp: "ccp wire endpoint, TCP, SCRAM",
      direct: "direct unix socket (reference)",
      pgbouncer: `${bouncerName}, TCP, SCRAM`,
    };
    console.log(
      `Postgres ${server.driver.pgVersion}, ${pgbenchVersion.trim()}, ${"bin" in bouncerBin ? bouncerName : "no PgBouncer"}, node ${process.version}, ${os.cpus().length} cores, ` +
        `load average ${num(loadStart, 2)} at start (${num(os.loadavg()[0] ?? NaN, 2)} at end, this run's own load included)`,
    );
    console.log(`one instance, pgbench -i -s ${SCALE} (${(SCALE * 100_000).toLocaleString("en-US")} rows in pgbench_accounts); pgbench -S (built-in select-only), -M simple, --no-vacuum,`);
    console.log(`-j 2 when more than one client; ${ROUNDS} rounds of ${duration} s per path and client count, each after a ${warm} s warm-up run of the same path, paths in rotated order;`);
    console.log("sslmode=disable on both TCP paths. Each row is the path's median-TPS round; \"TPS of each round\" lists every round's TPS in the order run.");
    console.log("TPS: pgbench's, without initial connection time; latency: every transaction from pgbench's -l log (µs), mean and nearest-rank percentiles;");
    console.log("proxy µs/xact: CPU time of ccpd (all its threads) or of pgbouncer during the timed run, including its connection set-up, per transaction\n");

    const heads = ["TPS", "avg ms", "p50 ms", "p99 ms", "xacts", "proxy µs/xact", "TPS of each round"];
    for (const clients of CLIENTS) {
      const row = results.get(clients) as Map<Path, Summary>;
      const lines = [...row].map(([name, s]) => ({
        label: LABELS[name],
        cells: [num(s.tps, 0), num(s.mean, 3), num(s.p50, 3), num(s.p99, 3), String(s.n), s.cpu === undefined ? "" : num(s.cpu, 1), s.rounds.map((t) => num(t, 0)).join(" ")],
      }));
      const c = row.get("ccp");
      for (const [name, label] of [
        ["direct", "ccp / direct"],
        ["pgbouncer", "ccp / PgBouncer"],
      ] as const) {
        const o = row.get(name);
        if (o && c) {
          const cpu = c.cpu !== undefined && o.cpu !== undefined ? ratio(c.cpu, o.cpu) : "";
          lines.push({ label, cells: [ratio(c.tps, o.tps), ratio(c.mean, o.mean), ratio(c.p50, o.p50), ratio(c.p99, o.p99), "", cpu, ""] });
        }
      }
      console.log(renderGrid(`${clients} client${clients > 1 ? "s" : ""}`, heads, lines));
      console.log("");
    }

    if ("bin" in bouncerBin) {
      const per = CLIENTS.map((clients) => {
        const row = results.get(clients) as Map<Path, Summary>;
        const c = row.get("ccp");
        const b = row.get("pgbouncer");
        return { clients, r: c && b ? c.tps / b.tps : NaN };
      });
      const met = per.every(({ r }) => r >= 1);
      console.log(`target\n  ccp ≥ PgBouncer's TPS at every client count: ${met ? "met" : "NOT met"} (${per.map(({ clients, r }) => `c=${clients}: ${num(r, 2)}x`).join(", ")})`);
    } else {
      console.log(`target\n  ccp ≥ PgBouncer's TPS at every client count: not measured (${bouncerBin.skip})`);
    }

    if (failed.length > 0) console.log(`\nnot measured (every attempt failed; see stderr): ${failed.join(", ")}`);
    const notes = [
      `ccpd started with wireMaxConnections ${WIRE_MAX_CONNECTIONS} (default 50: 64 clients would be refused with 53300; 70 is the most beside the gateway pool); the instance has max_connections ${max},`,
      `  superuser_reserved_connections ${su}${reserved === null ? "" : `, reserved_connections ${reserved}`}: ${slots} slots for ${TENANT.user}; each row waits until the previous row's sessions are gone.`,
      "ccp: the DATABASE_URL from create (user clusterbase.db-…), SCRAM-SHA-256 in ccpd, one server connection per client session over the unix socket, then byte",
      `  forwarding by ${forwarderDescription()}.`,
    ];
    if ("bin" in bouncerBin) {
      notes.push(
        `PgBouncer: ${bouncerBin.installed ? "installed by this run with apt-get (Debian's package)" : `Debian's package (${bouncerBin.bin})`}, pool_mode = session, auth_type = scram-sha-256 against a`,
        `  plain-text auth_file, default_pool_size ${WIRE_MAX_CONNECTIONS}, server connections over the instance's unix socket; started fresh for each row, its pool filled by the warm-up run.`,
      );
      if (runAs) {
        notes.push(
          `  pgbouncer refuses to run as root, so it ran as the OS user "${runAs.name}"; the instance's peer auth maps only ccpd's OS user, so this run added`,
          `  "ccp ${runAs.name} ${TENANT.user}" to the instance's pg_ident.conf (+ pg_reload_conf()) and removed it afterwards.`,
        );
      }
    }
    notes.push("All of pgbench, ccpd, pgbouncer and Postgres share this machine's cores; the machine may run other work (see the load average).");
    console.log(`\nnotes:\n  ${notes.join("\n  ")}`);
  } finally {
    await bouncer?.close().catch(() => undefined);
    await undoPeer?.().catch((err: Error) => console.error(`could not revert the pg_ident.conf change: ${err.message}`));
    await admin?.end().catch(() => undefined);
    await server?.close();
    removeDir(work);
  }
}
