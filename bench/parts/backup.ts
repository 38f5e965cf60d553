import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import pg from "pg";
import { resolveServerConfig, startServer, type RunningServer } from "../../packages/server/dist/index.js";
import type { PartOptions } from "../lib/part.ts";
import { percentile, timed } from "../lib/stats.ts";
import { renderGrid } from "../lib/table.ts";
import { makeTempDir, removeDir } from "../lib/tmp.ts";

const execFileAsync = promisify(execFile);


/** The machine's load average, printed beside the figures (they move with it). */
const loadAverage = () => os.loadavg().map((n) => n.toFixed(2)).join(", ");
const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** Target: a base backup reads at least half as fast as a plain `cp -r` of the same data dir. */
const TARGET_BACKUP_VS_RAW = 0.5;
/** WAL written after the base backup, for point-in-time restore to replay. */
const PITR_WAL_MIB = 200;
const LAG_LOAD_SECONDS = 15;
const LAG_SAMPLE_MS = 200;
/** Rows per INSERT while filling (about 240 MiB of heap). */
const FILL_CHUNK_ROWS = 250_000;
/** ~1 kB rows, stored inline (under the TOAST threshold). Gzip shrinks the repeated md5 a lot: see the printed ratio. */
const ROW = (from: string, to: string) => `SELECT g, repeat(md5(g::text), 30) FROM generate_series(${from}, ${to}) g`;

type Pg = pg.Client;

/** `X/Y` (pg_lsn as text) → byte position. */
function lsnBytes(lsn: string): number {
  const [hi, lo] = lsn.split("/");
  return parseInt(hi ?? "0", 16) * 2 ** 32 + parseInt(lo ?? "0", 16);
}

/** End position of a WAL segment file name (TTTTTTTTXXXXXXXXYYYYYYYY); undefined for .history and the like. */
function segmentEnd(name: string | null, segmentBytes: number): number | undefined {
  if (!name || !/^[0-9A-F]{24}$/.test(name)) return undefined;
  const log = parseInt(name.slice(8, 16), 16);
  const seg = parseInt(name.slice(16, 24), 16);
  return log * 2 ** 32 + (seg + 1) * segmentBytes;
}

/** Bytes of every regular file under dir (what `cp -r` copies). */
function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    // A file may go between the listing and the stat (WAL recycled, archive status renamed).
    if (e.isFile()) total += statSync(path.join(e.parentPath, e.name), { throwIfNoEntry: false })?.size ?? 0;
  }
  return total;
}

async function connect(server: RunningServer, id: string, who: "tenant" | "admin"): Promise<Pg> {
  const { socketDir, port } = server.driver.endpoint(id);
  // As root, peer auth on the instance's socket admits both roles.
  const client = new pg.Client({ host: socketDir, port, ...(who === "tenant" ? { user: "clusterbase", database: "default" } : { user: "ccp_admin", database: "postgres" }) });
  await client.connect();
  return client;
}

async function one<T>(c: Pg, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await c.query(sql, params);
  if (!rows[0]) throw new Error(`no row from: ${sql}`);
  return rows[0] as T;
}

const currentLsn = async (admin: Pg) => lsnBytes((await one<{ lsn: string }>(admin, "SELECT pg_current_wal_lsn()::text AS lsn")).lsn);

/** Switch to a new segment and wait until the archiver has the previous one: no archiving left to compete with what comes next. */
async function drainArchive(admin: Pg): Promise<void> {
  const { wal } = await one<{ wal: string }>(admin, "SELECT pg_walfile_name(pg_switch_wal()) AS wal");
  for (let i = 0; i < 1200; i++) {
    const { last } = await one<{ last: string | null }>(admin, "SELECT last_archived_wal AS last FROM pg_stat_archiver");
    if (last && /^[0-9A-F]{24}$/.test(last) && last.slice(8) >= wal.slice(8)) return;
    await sleep(100);
  }
  throw new Error(`the archiver did not catch up with ${wal} in 120 s`);
}

/** Insert ~1 kB rows until pg_database_size reaches `bytes`. */
async function fill(tenant: Pg, admin: Pg, bytes: number): Promise<{ rows: number; size: number }> {
  await tenant.query("CREATE TABLE big (id bigint, payload text)");
  let rows = 0;
  let size = 0;
  while (size < bytes) {
    await tenant.query(`INSERT INTO big ${ROW(String(rows + 1), String(rows + FILL_CHUNK_ROWS))}`);
    rows += FILL_CHUNK_ROWS;
    size = Number((await one<{ size: string }>(admin, "SELECT pg_database_size('default') AS size")).size);
    process.stderr.write(`  filling: ${rows.toLocaleString("en")} rows, ${(size / GiB).toFixed(2)} GiB\n`);
  }
  await admin.query("CHECKPOINT");
  await drainArchive(admin);
  return { rows, size };
}

interface RawCopy {
  readonly bytes: number;
  readonly cpSeconds: number;
  readonly tarSeconds: number;
  readonly tarBytes: number;
}

/** The reference: `cp -r` of the data dir then `sync`, and `tar -czf` of it, into a scratch dir (removed after). */
async function rawCopy(dataDir: string): Promise<RawCopy> {
  const scratch = makeTempDir("ccp-bench-rawcopy-");
  try {
    const bytes = dirBytes(dataDir);
    const [, cpMs] = await timed(async () => {
      await execFileAsync("cp", ["-r", dataDir, path.join(scratch, "copy")]);
      await execFileAsync("sync");
    });
    removeDir(path.join(scratch, "copy"));
    const archive = path.join(scratch, "data.tar.gz");
    const [, tarMs] = await timed(async () => {
      try {
        await execFileAsync("tar", ["-czf", archive, "--warning=no-file-changed", "-C", dataDir, "."]);
      } catch (err) {
        // 1: "some files differ" (the server is running); only worse is a failure.
        if ((err as { code?: number }).code !== 1) throw err;
      }
      await execFileAsync("sync");
    });
    return { bytes, cpSeconds: cpMs / 1000, tarSeconds: tarMs / 1000, tarBytes: statSync(archive).size };
  } finally {
    removeDir(scratch);
  }
}

interface PitrFigures {
  readonly walBytes: number;
  readonly replaySeconds: number | undefined;
  readonly totalSeconds: number;
}

/**
 * Write PITR_WAL_MIB of WAL after the backup, then restore to an instant just
 * after it through the API. The replay rate comes from Postgres's own
 * "redo starts at … / redo done at … elapsed" lines in the new instance's log.
 */
async function measurePitr(server: RunningServer, key: string, id: string, tenant: Pg, admin: Pg): Promise<PitrFigures> {
  await tenant.query("CREATE TABLE walgen (id bigint, payload text)");
  const start = await currentLsn(admin);
  let rows = 0;
  while ((await currentLsn(admin)) - start < PITR_WAL_MIB * MiB) {
    await tenant.query(`INSERT INTO walgen ${ROW(String(rows + 1), String(rows + 20_000))}`);
    rows += 20_000;
  }
  await sleep(50);
  const time = new Date().toISOString();
  await sleep(50);
  const [res, ms] = await timed(() =>
    fetch(`${server.url}/v1/databases/${id}/restore`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ time, name: "bench-pitr" }),
    }),
  );
  const body = (await res.json()) as { database?: { id: string } };
  if (res.status !== 201 || !body.database) throw new Error(`PITR: HTTP ${res.status} ${JSON.stringify(body)}`);
  const copy = body.database.id;
  try {
    const c = await connect(server, copy, "tenant");
    try {
      const n = Number((await one<{ n: string }>(c, "SELECT count(*) AS n FROM walgen")).n);
      if (n !== rows) throw new Error(`PITR copy has ${n} rows of walgen, expected ${rows}`);
    } finally {
      await c.end();
    }
    // postgres.log until the logging collector starts, then log/*.json (one JSON message a line: the regexes match inside).
    const instanceDir = path.dirname(server.driver.dataDir(copy));
    const logDir = path.join(instanceDir, "log");
    const logFiles = [path.join(instanceDir, "postgres.log"), ...(existsSync(logDir) ? readdirSync(logDir).map((f) => path.join(logDir, f)) : [])];
    const log = logFiles.filter((f) => existsSync(f)).map((f) => readFileSync(f, "utf8")).join("\n");
    const starts = [...log.matchAll(/redo starts at ([0-9A-F]+\/[0-9A-F]+)/g)].at(-1)?.[1];
    const done = [...log.matchAll(/redo done at ([0-9A-F]+\/[0-9A-F]+).*elapsed: ([\d.]+) s/g)].at(-1);
    if (!starts || !done?.[1] || !done[2]) {
      return { walBytes: (await currentLsn(admin)) - start, replaySeconds: undefined, totalSeconds: ms / 1000 };
    }
    return { walBytes: lsnBytes(done[1]) - lsnBytes(starts), replaySeconds: Number(done[2]), totalSeconds: ms / 1000 };
  } finally {
    await server.databases.destroy(copy);
  }
}

interface LagFigures {
  readonly samples: number;
  readonly mib: number[];
  readonly segments: number[];
  readonly seconds: number[];
  readonly walMiBPerSecond: number;
  readonly segmentBytes: number;
}

/**
 * A writer inserts without pause for LAG_LOAD_SECONDS; every LAG_SAMPLE_MS the
 * WAL position is compared with the end of the last archived segment (so the
 * segment being written always counts). Lag in seconds: that many bytes at the
 * write rate measured since the previous sample, since a lag shorter than the
 * sampling interval cannot be timed directly.
 */
async function measureArchiveLag(server: RunningServer, id: string, tenant: Pg, admin: Pg): Promise<LagFigures> {
  const segmentBytes = Number((await one<{ b: string }>(admin, "SELECT pg_size_bytes(current_setting('wal_segment_size')) AS b")).b);
  await tenant.query("CREATE TABLE lagload (id bigint, payload text)");
  await drainArchive(admin);
  const sampler = await connect(server, id, "admin");
  let stop = false;
  const writer = (async () => {
    let n = 0;
    while (!stop) {
      await tenant.query(`INSERT INTO lagload ${ROW(String(n + 1), String(n + 5_000))}`);
      n += 5_000;
    }
  })();
  let previous: { t: number; lsn: number } | undefined;
  let n = 0;
  const mib: number[] = [];
  const segments: number[] = [];
  const seconds: number[] = [];
  const startLsn = await currentLsn(sampler);
  const began = performance.now();
  try {
    while (performance.now() - began < LAG_LOAD_SECONDS * 1000) {
      const tick = performance.now();
      const r = await one<{ lsn: string; last: string | null }>(sampler, "SELECT pg_current_wal_lsn()::text AS lsn, last_archived_wal AS last FROM pg_stat_archiver");
      const lsn = lsnBytes(r.lsn);
      n++;
      const archivedTo = segmentEnd(r.last, segmentBytes);
      if (archivedTo !== undefined && previous && lsn > previous.lsn) {
        const lag = Math.max(0, lsn - archivedTo);
        mib.push(lag / MiB);
        segments.push(lag / segmentBytes);
        seconds.push(lag / ((lsn - previous.lsn) / ((tick - previous.t) / 1000)));
      }
      previous = { t: tick, lsn };
      await sleep(Math.max(0, LAG_SAMPLE_MS - (performance.now() - tick)));
    }
  } finally {
    stop = true;
    await writer;
  }
  const wal = (await currentLsn(sampler)) - startLsn;
  const elapsed = (performance.now() - began) / 1000;
  await sampler.end();
  return { samples: n, mib, segments, seconds, walMiBPerSecond: wal / MiB / elapsed, segmentBytes };
}

const fmt = (x: number, digits = 1) => (Math.abs(x) >= 100 ? String(Math.round(x)) : x.toFixed(digits));
const p50 = (xs: readonly number[]) => percentile([...xs].sort((a, b) => a - b), 50);
const max = (xs: readonly number[]) => Math.max(...xs);

/**
 * Base backup throughput against `cp -r` / `tar -czf` of the same data dir,
 * restore time, point-in-time replay rate and WAL archive lag under load, on
 * one database of at least --size-gb GiB (default 1), all in one run.
 */
export async function backupPart(options: PartOptions): Promise<void> {
  const loadAtStart = loadAverage();
  const sizeGb = options.sizeGb ?? 1;
  const work = makeTempDir("ccp-bench-backup-");
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(work, "config"), CCP_LOG_LEVEL: process.env["CCP_LOG_LEVEL"] ?? "warn" };
  let server: RunningServer | undefined;
  let tenant: Pg | undefined;
  let admin: Pg | undefined;
  try {
    // backupAt off: no scheduled backup may run in the middle of a measurement.
    server = await startServer(resolveServerConfig({ dataDir: path.join(work, "data"), port: 0, wirePort: 0, backupAt: "off" }, env));
    const key = server.createdAdminKey;
    if (!key) throw new Error("fresh ccpd created no admin key");
    const { database } = await server.databases.create("bench-backup");
    const id = database.id;
    tenant = await connect(server, id, "tenant");
    admin = await connect(server, id, "admin");

    const filled = await fill(tenant, admin, sizeGb * GiB);
    const dataDir = server.driver.dataDir(id);
    process.stderr.write("  raw copies…\n");
    const raw = await rawCopy(dataDir);
    process.stderr.write("  base backup…\n");
    const [backup, backupMs] = await timed(() => (server as RunningServer).backups.create(id));
    const manifest = JSON.parse(readFileSync(path.join(server.store.backupDir(id, backup.id), "manifest.json"), "utf8")) as { files: { size: number }[] };
    const backupRead = manifest.files.reduce((s, f) => s + f.size, 0);
    const backupStored = backup.size_bytes ?? 0;
    const backupSeconds = backupMs / 1000;

    process.stderr.write(`  ${PITR_WAL_MIB} MiB of WAL, then point-in-time restore…\n`);
    const pitr = await measurePitr(server, key, id, tenant, admin);
    await tenant.end();
    await admin.end();
    tenant = admin = undefined;

    process.stderr.write("  restore in place…\n");
    const [, restoreMs] = await timed(() => (server as RunningServer).backups.restoreInPlace(id, backup.id));
    const restoreSeconds = restoreMs / 1000;

    process.stderr.write(`  archive lag under a ${LAG_LOAD_SECONDS} s write load…\n`);
    tenant = await connect(server, id, "tenant");
    admin = await connect(server, id, "admin");
    const lag = await measureArchiveLag(server, id, tenant, admin);

    const rawRate = raw.bytes / MiB / raw.cpSeconds;
    const backupRate = backupRead / MiB / backupSeconds;
    const ratio = backupRate / rawRate;
    console.log(`Postgres ${server.driver.pgVersion}, node ${process.version}, ${os.cpus().length} cores, ${(os.totalmem() / GiB).toFixed(0)} GiB RAM`);
    console.log(`load average (1, 5, 15 min): ${loadAtStart} at the start, ${loadAverage()} at the end (figures move with it)`);
    console.log(
      `database ${(filled.size / GiB).toFixed(2)} GiB (pg_database_size; ${filled.rows.toLocaleString("en")} rows of repeat(md5(n), 30)), data dir ${fmt(raw.bytes / MiB)} MiB incl. pg_wal`,
    );
    console.log(
      "Both copies read warm pages: the fill just wrote them and the page cache cannot be dropped reliably here; the raw copies ran first, right before the backup.\n",
    );
    console.log(
      renderGrid(`base backup vs raw copy`, ["read MiB", "written", "seconds", "MiB/s"], [
        { label: "cp -r data dir + sync", cells: [fmt(raw.bytes / MiB), fmt(raw.bytes / MiB), fmt(raw.cpSeconds, 2), fmt(rawRate)] },
        { label: "tar -czf data dir + sync", cells: [fmt(raw.bytes / MiB), fmt(raw.tarBytes / MiB), fmt(raw.tarSeconds, 2), fmt(raw.bytes / MiB / raw.tarSeconds)] },
        { label: "ccp backup (lz4, 4 files)", cells: [fmt(backupRead / MiB), fmt(backupStored / MiB), fmt(backupSeconds, 2), fmt(backupRate)] },
        { label: "ratio ccp backup / cp -r", cells: ["", "", "", `${ratio.toFixed(2)}x`] },
      ]),
    );
    console.log("(the backup skips pg_wal and the other excluded files; \"read MiB\" is what each one copied; MiB/s = read MiB / seconds)");
    console.log(
      `target: backup ≥ ${TARGET_BACKUP_VS_RAW * 100}% of the raw copy's throughput: ${ratio >= TARGET_BACKUP_VS_RAW ? "met" : "NOT met"} (${Math.round(ratio * 100)}%)\n`,
    );
    console.log(
      renderGrid("restore", ["GiB", "seconds", "s/GiB"], [
        { label: "restore in place (unpack, replay)", cells: [(backupRead / GiB).toFixed(2), fmt(restoreSeconds, 2), fmt(restoreSeconds / (backupRead / GiB), 2)] },
      ]),
    );
    console.log("");
    console.log(
      renderGrid(`point-in-time restore (${PITR_WAL_MIB} MiB WAL after the backup)`, ["MiB", "seconds", "MiB/s"], [
        pitr.replaySeconds === undefined
          ? { label: "WAL replay (no redo line in log)", cells: [fmt(pitr.walBytes / MiB), "?", "?"] }
          : { label: "WAL replayed (postgres.log redo)", cells: [fmt(pitr.walBytes / MiB), fmt(pitr.replaySeconds, 2), fmt(pitr.walBytes / MiB / pitr.replaySeconds)] },
        { label: "whole POST …/restore (new database)", cells: ["", fmt(pitr.totalSeconds, 2), ""] },
      ]),
    );
    console.log("(whole = flush WAL to the archive, unpack the base backup, replay, promote, register the new database)\n");
    console.log(
      renderGrid(`WAL archive lag under load (${LAG_LOAD_SECONDS} s, every ${LAG_SAMPLE_MS} ms, n=${lag.mib.length})`, ["p50", "max"], [
        { label: "MiB not yet archived", cells: [fmt(p50(lag.mib)), fmt(max(lag.mib))] },
        { label: `segments (${lag.segmentBytes / MiB} MiB each)`, cells: [fmt(p50(lag.segments), 2), fmt(max(lag.segments), 2)] },
        { label: "seconds (lag / write rate)", cells: [fmt(p50(lag.seconds), 2), fmt(max(lag.seconds), 2)] },
      ]),
    );
    console.log(`(writer: one session, INSERT of 5,000 ~1 kB rows at a time, ${fmt(lag.walMiBPerSecond)} MiB/s of WAL; lag counted from the end of pg_stat_archiver.last_archived_wal)`);
  } finally {
    await tenant?.end().catch(() => undefined);
    await admin?.end().catch(() => undefined);
    await server?.close();
    removeDir(work);
  }
}
