import { execFile } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import pg from "pg";
import { resolveServerConfig, startServer, type RunningServer } from "../../packages/server/dist/index.js";
import type { PartOptions } from "../lib/part.ts";
import { retrying } from "../lib/retry.ts";
import { timed } from "../lib/stats.ts";
import { renderGrid } from "../lib/table.ts";
import { makeTempDir, removeDir } from "../lib/tmp.ts";

const execFileAsync = promisify(execFile);


/** The machine's load average, printed beside the figures (they move with it). */
const loadAverage = () => os.loadavg().map((n) => n.toFixed(2)).join(", ");
const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** Issue 20's target: a branch from now of 1 GiB within 1.5× a `cp -r` of its data dir. */
const TARGET_BRANCH_VS_CP = 1.5;
/** Issue 20's target for restore in place and PITR. */
const TARGET_RESTORE_S_PER_GIB = 5;
/** How far back the branch at an instant goes (it must come from a backup + WAL). */
const INSTANT_BACK_S = 60;
const FILL_CHUNK_ROWS = 250_000;
const PITR_NOW = "PITR to now (new database) → first query";
const PITR_REWRITTEN = "PITR to now, every row rewritten since → first query";
/** ~1 kB rows, stored inline, as the backup part fills. */
const ROW = (from: number, to: number) => `SELECT g, repeat(md5(g::text), 30) FROM generate_series(${from}, ${to}) g`;

type Pg = pg.Client;

async function connect(server: RunningServer, id: string, who: "tenant" | "admin"): Promise<Pg> {
  const { socketDir, port } = server.driver.endpoint(id);
  const client = new pg.Client({ host: socketDir, port, ...(who === "tenant" ? { user: "clusterbase", database: "default" } : { user: "ccp_admin", database: "postgres" }) });
  await client.connect();
  return client;
}

async function scalar(c: Pg, sql: string): Promise<number> {
  const { rows } = await c.query<{ v: string }>(sql);
  return Number(rows[0]?.v);
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    // A file may go between the listing and the stat (WAL recycled, archive status renamed).
    if (e.isFile()) total += statSync(path.join(e.parentPath, e.name), { throwIfNoEntry: false })?.size ?? 0;
  }
  return total;
}

/** One measured row: seconds, or the reason it failed (the run goes on). */
type Figure = { seconds: number; note?: string; per?: number; wal?: number } | { error: string };

/**
 * Branch from now (POST …/branches until the branch answers its first query
 * through the gateway), branch at an instant a minute back (backup + WAL
 * replay), reset of a branch to its parent, beside `cp -r` of the parent's data
 * dir (+ sync) as the physical reference, on one database of --size-gb GiB.
 */
export async function branchPart(options: PartOptions): Promise<void> {
  const loadAtStart = loadAverage();
  const sizeGb = options.sizeGb ?? 1;
  const work = makeTempDir("ccp-bench-branch-");
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(work, "config"), CCP_LOG_LEVEL: process.env["CCP_LOG_LEVEL"] ?? "warn" };
  let server: RunningServer | undefined;
  const clients: Pg[] = [];
  try {
    server = await startServer(resolveServerConfig({ dataDir: path.join(work, "data"), port: 0, wirePort: 0, backupAt: "off" }, env));
    const s = server;
    const key = s.createdAdminKey as string;
    const api = async (method: string, pathname: string, body?: unknown) => {
      const res = await fetch(`${s.url}${pathname}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const json = (await res.json()) as Record<string, unknown>;
      if (res.status >= 300) throw new Error(`${method} ${pathname}: HTTP ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    const firstQuery = async (id: string, token: string) => {
      const res = await fetch(`${s.url}/v1/databases/${id}/query`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ sql: "SELECT 1 AS one" }),
      });
      if (res.status !== 200) throw new Error(`first query on ${id}: HTTP ${res.status} ${await res.text()}`);
    };
    const rowsOf = async (id: string) => {
      const c = await connect(s, id, "tenant");
      try {
        return await scalar(c, "SELECT count(*) AS v FROM big");
      } finally {
        await c.end();
      }
    };

    const { database, token: parentToken } = await s.databases.create("bench-parent");
    const id = database.id;
    const tenant = await connect(s, id, "tenant");
    const admin = await connect(s, id, "admin");
    clients.push(tenant, admin);
    await tenant.query("CREATE TABLE big (id bigint, payload text)");
    let rows = 0;
    let size = 0;
    while (size < sizeGb * GiB) {
      await tenant.query(`INSERT INTO big ${ROW(rows + 1, rows + FILL_CHUNK_ROWS)}`);
      rows += FILL_CHUNK_ROWS;
      size = await scalar(admin, "SELECT pg_database_size('default') AS v");
      process.stderr.write(`  filling: ${rows.toLocaleString("en")} rows, ${(size / GiB).toFixed(2)} GiB\n`);
    }
    // As a bulk load is followed (and autovacuum would soon do): with data checksums on, the first reads and the
    // vacuum of a freshly loaded table rewrite every page into the WAL (hint bits, visibility map), so without it
    // the WAL since the backup is the size of the table again and PITR measures that replay (printed below either way).
    process.stderr.write("  VACUUM (FREEZE, ANALYZE)…\n");
    await tenant.query("VACUUM (FREEZE, ANALYZE) big");
    await admin.query("CHECKPOINT");
    process.stderr.write("  base backup (for the branch at an instant)…\n");
    const [backup, backupMs] = await timed(() => s.backups.create(id));
    const backupDone = new Date(backup.finished_at ?? Date.now());
    const dataDir = s.driver.dataDir(id);
    const dataBytes = dirBytes(dataDir);

    const figures = new Map<string, Figure>();
    const measure = async (label: string, fn: () => Promise<{ seconds: number; note?: string; per?: number; wal?: number }>) => {
      process.stderr.write(`  ${label}…\n`);
      const r = await retrying(label, fn, 2);
      figures.set(label, r ?? { error: "failed (see stderr)" });
    };

    await measure("cp -r data dir + sync", async () => {
      const scratch = makeTempDir("ccp-bench-branch-cp-");
      try {
        const [, ms] = await timed(async () => {
          await execFileAsync("cp", ["-r", dataDir, path.join(scratch, "copy")]);
          await execFileAsync("sync");
        });
        return { seconds: ms / 1000 };
      } finally {
        removeDir(scratch);
      }
    });

    let n = 0;
    await measure("branch from now → first query", async () => {
      const name = `bench-now-${++n}`;
      const [created, ms] = await timed(async () => {
        const r = (await api("POST", `/v1/databases/${id}/branches`, { name })) as { database: { id: string }; token: string };
        await firstQuery(r.database.id, r.token);
        return r;
      });
      const got = await rowsOf(created.database.id);
      await s.databases.destroy(created.database.id);
      if (got !== rows) throw new Error(`the branch has ${got} rows, the parent had ${rows}`);
      return { seconds: ms / 1000 };
    });

    // A branch under write load: the parent keeps taking writes while it is copied (not timed against cp: a check it never blocks).
    await measure("branch from now, parent under writes", async () => {
      let stop = false;
      let commits = 0;
      const writer = (async () => {
        while (!stop) {
          await tenant.query("INSERT INTO big SELECT -1, 'w'");
          commits++;
        }
      })();
      try {
        const [created, ms] = await timed(async () => {
          const r = (await api("POST", `/v1/databases/${id}/branches`, { name: `bench-load-${++n}` })) as { database: { id: string }; token: string };
          await firstQuery(r.database.id, r.token);
          return r;
        });
        const during = commits;
        await s.databases.destroy(created.database.id);
        return { seconds: ms / 1000, note: `${during} parent commits meanwhile` };
      } finally {
        stop = true;
        await writer;
        await tenant.query("DELETE FROM big WHERE id = -1");
      }
    });

    await measure("reset branch to parent → first query", async () => {
      const r = (await api("POST", `/v1/databases/${id}/branches`, { name: `bench-reset-${++n}` })) as { database: { id: string }; token: string };
      try {
        await tenant.query(`INSERT INTO big ${ROW(rows + 1, rows + 1000)}`);
        rows += 1000;
        const [, ms] = await timed(async () => {
          await api("POST", `/v1/databases/${r.database.id}/reset-from-parent`);
          await firstQuery(r.database.id, r.token);
        });
        const got = await rowsOf(r.database.id);
        if (got !== rows) throw new Error(`the reset branch has ${got} rows, the parent ${rows}`);
        return { seconds: ms / 1000 };
      } finally {
        await s.databases.destroy(r.database.id);
      }
    });

    // The instant must be after the backup finished; wait for it, writing a marked batch after it.
    const wait = backupDone.getTime() + (INSTANT_BACK_S + 2) * 1000 - Date.now();
    if (wait > 0) {
      process.stderr.write(`  waiting ${Math.ceil(wait / 1000)} s so that "a minute back" falls after the backup…\n`);
      await sleep(wait);
    }
    await measure(`branch at now - ${INSTANT_BACK_S} s → first query`, async () => {
      const at = new Date(Date.now() - INSTANT_BACK_S * 1000).toISOString();
      const [created, ms] = await timed(async () => {
        const r = (await api("POST", `/v1/databases/${id}/branches`, { name: `bench-at-${++n}`, at })) as { database: { id: string }; token: string };
        await firstQuery(r.database.id, r.token);
        return r;
      });
      await s.databases.destroy(created.database.id);
      return { seconds: ms / 1000 };
    });

    // Restore rows come last: restoring the parent in place rewinds it to the backup.
    const manifest = JSON.parse(readFileSync(path.join(s.store.backupDir(id, backup.id), "manifest.json"), "utf8")) as { stop_lsn: string; files: { size: number }[] };
    const backupBytes = manifest.files.reduce((t, f) => t + f.size, 0);
    await measure("tar -x of the backup's bytes + sync", async () => {
      const scratch = makeTempDir("ccp-bench-branch-tar-");
      try {
        const archive = path.join(scratch, "data.tar");
        await execFileAsync("tar", ["-cf", archive, "--exclude=./pg_wal", "--exclude=./postmaster.pid", "--warning=no-file-changed", "-C", dataDir, "."]).catch((err: { code?: number }) => {
          if (err.code !== 1) throw err; // 1: a file changed while read (the server runs)
        });
        mkdirSync(path.join(scratch, "out"));
        const [, ms] = await timed(async () => {
          await execFileAsync("tar", ["-xf", archive, "-C", path.join(scratch, "out")]);
          await execFileAsync("sync");
        });
        return { seconds: ms / 1000, per: backupBytes };
      } finally {
        removeDir(scratch);
      }
    });
    const pitrToNow = async () => {
      const walSince = await scalar(admin, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${manifest.stop_lsn}') AS v`);
      const time = new Date().toISOString();
      const [created, ms] = await timed(async () => {
        const r = (await api("POST", `/v1/databases/${id}/restore`, { time, name: `bench-pitr-${++n}` })) as { database: { id: string }; token: string };
        await firstQuery(r.database.id, r.token);
        return r;
      });
      const got = await rowsOf(created.database.id);
      await s.databases.destroy(created.database.id);
      if (got !== rows) throw new Error(`the PITR copy has ${got} rows, the parent had ${rows}`);
      return { seconds: ms / 1000, per: backupBytes, wal: walSince, note: `unpack + replay of ${(walSince / MiB).toFixed(0)} MiB of WAL since the backup` };
    };
    await measure(PITR_NOW, pitrToNow);
    // The same after a rewrite of every row since the backup: as much WAL again as the table, replayed while it is still being copied in.
    process.stderr.write("  UPDATE of every row (WAL for the next row)…\n");
    await tenant.query("UPDATE big SET payload = payload");
    await measure(PITR_REWRITTEN, pitrToNow);
    // Its server stops during the restore: no idle session of ours may be cut under it.
    for (const c of clients.splice(0)) await c.end().catch(() => undefined);
    await measure("restore in place → first query", async () => {
      const [, ms] = await timed(async () => {
        await s.backups.restoreInPlace(id, backup.id);
        await firstQuery(id, parentToken);
      });
      return { seconds: ms / 1000, per: backupBytes };
    });

    const cp = figures.get("cp -r data dir + sync");
    const cpSeconds = cp && "seconds" in cp ? cp.seconds : undefined;
    console.log(`Postgres ${s.driver.pgVersion}, node ${process.version}, ${os.cpus().length} cores; database ${(size / GiB).toFixed(2)} GiB (pg_database_size, ${rows.toLocaleString("en")} rows), data dir ${(dataBytes / MiB).toFixed(0)} MiB incl. pg_wal`);
    console.log(`load average (1, 5, 15 min): ${loadAtStart} at the start, ${loadAverage()} at the end (figures move with it)`);
    console.log(`(base backup for the branch at an instant took ${(backupMs / 1000).toFixed(2)} s; all copies read warm pages)\n`);
    console.log(
      renderGrid(
        "branches vs cp -r of the parent's data dir",
        ["seconds", "s/GiB", "× cp -r", "note"],
        [...figures].map(([label, f]) =>
          "error" in f
            ? { label, cells: ["failed", "", "", f.error] }
            : { label, cells: [f.seconds.toFixed(2), (f.seconds / ((f.per ?? dataBytes) / GiB)).toFixed(2), cpSeconds ? `${(f.seconds / cpSeconds).toFixed(2)}x` : "?", f.note ?? ""] },
        ),
      ),
    );
    const now = figures.get("branch from now → first query");
    if (now && "seconds" in now && cpSeconds) {
      const ratio = now.seconds / cpSeconds;
      console.log(`target: branch from now ≤ ${TARGET_BRANCH_VS_CP}× cp -r of the data dir: ${ratio <= TARGET_BRANCH_VS_CP ? "met" : "NOT met"} (${ratio.toFixed(2)}×${sizeGb < 1 ? `, at ${sizeGb} GiB; the target is stated for 1 GiB` : ""})`);
    }
    for (const label of ["restore in place → first query", PITR_NOW]) {
      const f = figures.get(label);
      const tar = figures.get("tar -x of the backup's bytes + sync");
      if (!f || !("seconds" in f)) continue;
      const perGib = f.seconds / (backupBytes / GiB);
      const tarPerGib = tar && "seconds" in tar ? ` ; tar -x ${(tar.seconds / (backupBytes / GiB)).toFixed(2)} s/GiB` : "";
      console.log(`target: ${label.split(" →")[0]} ≤ ${TARGET_RESTORE_S_PER_GIB} s/GiB: ${perGib <= TARGET_RESTORE_S_PER_GIB ? "met" : "NOT met"} (${perGib.toFixed(2)} s/GiB${tarPerGib})`);
    }
    for (const label of [PITR_NOW, PITR_REWRITTEN]) {
      const f = figures.get(label);
      if (!f || !("seconds" in f) || !f.wal) continue;
      // PITR's work is the backup's bytes and the WAL it replays; with more WAL than data, per GiB of the backup alone says little.
      const perGib = f.seconds / ((backupBytes + f.wal) / GiB);
      console.log(`${label.split(" →")[0]}, per GiB of what it restores (the backup's ${(backupBytes / MiB).toFixed(0)} MiB + ${(f.wal / MiB).toFixed(0)} MiB of WAL replayed): ${perGib.toFixed(2)} s/GiB (target ${TARGET_RESTORE_S_PER_GIB} s/GiB: ${perGib <= TARGET_RESTORE_S_PER_GIB ? "met" : "NOT met"})`);
    }
    console.log(`(s/GiB: per GiB of the data dir for the branch rows and cp -r; per GiB of the backup's content, ${(backupBytes / MiB).toFixed(0)} MiB (the data dir without pg_wal), for tar -x, PITR and restore)`);
    console.log("(restore: unpack the ccp-lz4 backup, every file checked against its sha256 as it streams, recovery to the backup's end, first query; PITR: the same plus the WAL archived since)");
    console.log("(branch from now: backup mode + file copy (reflink where the filesystem has it) + WAL since, recovery to consistency, register; at an instant: unpack the base backup + replay the WAL archive)");
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    await server?.close();
    removeDir(work);
  }
}
