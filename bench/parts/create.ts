import os from "node:os";
import path from "node:path";
import pg from "pg";
import { resolvePgBinaries, resolveServerConfig, startServer, type RunningServer } from "../../packages/server/dist/index.js";
import { resolveRunAs } from "../../packages/server/dist/runtime/process/system-user.js";
import { api } from "../lib/api.ts";
import type { PartOptions } from "../lib/part.ts";
import { PlainPostgres } from "../lib/plain-postgres.ts";
import { summarize, timed } from "../lib/stats.ts";
import { renderTable } from "../lib/table.ts";
import { makeTempDir, removeDir } from "../lib/tmp.ts";

const TARGET_P50_MS = 300;

// ccpd keeps 2 pre-copied template data dirs (refilled in the background); creates that outrun the refill copy on the request path.
const CCP_CREATE = "ccp (warm spare / copy)";
const CCP_FIRST_QUERY = "ccp create→first query";
const PLAIN_CREATE = "initdb + pg_ctl start -w";
const CCP_DESTROY = "ccp (DELETE /v1/databases/{id})";
const PLAIN_DESTROY = "pg_ctl stop -m fast -w + rm -rf";

interface CcpSamples {
  readonly create: number[];
  readonly firstQuery: number[];
  readonly destroy: number[];
}

/** Connect as the tenant over the instance's socket and run one query. */
async function firstQuery(server: RunningServer, id: string): Promise<void> {
  const { socketDir, port } = server.driver.endpoint(id);
  const client = new pg.Client({ host: socketDir, port, user: "clusterbase", database: "default" });
  await client.connect();
  try {
    const { rows } = await client.query<{ one: number }>("SELECT 1 AS one");
    if (rows[0]?.one !== 1) throw new Error(`SELECT 1 on ${id} returned ${JSON.stringify(rows)}`);
  } finally {
    await client.end();
  }
}

/** One database through the real API; returns its id and the create timings. */
async function createOne(server: RunningServer, key: string, name: string): Promise<{ id: string; ready: number; query: number }> {
  const start = performance.now();
  const result = (await api(server, key, "POST", "/v1/databases", { name })) as { database: { id: string; status: string } };
  const ready = performance.now() - start;
  if (result.database.status !== "ready") throw new Error(`${name}: created with status ${result.database.status}`);
  // The API answers only once the server accepts connections: the query must work at once.
  await firstQuery(server, result.database.id);
  return { id: result.database.id, ready, query: performance.now() - start };
}

async function measureCcp(n: number): Promise<CcpSamples & { pgVersion: string }> {
  const work = makeTempDir("ccp-bench-create-");
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(work, "config"), CCP_LOG_LEVEL: process.env["CCP_LOG_LEVEL"] ?? "warn" };
  let server: RunningServer | undefined;
  try {
    server = await startServer(resolveServerConfig({ dataDir: path.join(work, "data"), port: 0, wirePort: 0 }, env));
    const key = server.createdAdminKey;
    if (!key) throw new Error("fresh ccpd created no admin key");

    const warm = await createOne(server, key, "bench-warmup");
    await api(server, key, "DELETE", `/v1/databases/${warm.id}`);

    const samples: CcpSamples = { create: [], firstQuery: [], destroy: [] };
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const { id, ready, query } = await createOne(server, key, `bench-${i}`);
      ids.push(id);
      samples.create.push(ready);
      samples.firstQuery.push(query);
    }
    for (const id of ids) {
      const [, ms] = await timed(() => api(server as RunningServer, key, "DELETE", `/v1/databases/${id}`));
      samples.destroy.push(ms);
    }
    const left = await server.driver.list();
    if (left.length > 0) throw new Error(`instances left after destroy: ${left.join(", ")}`);
    return { ...samples, pgVersion: server.driver.pgVersion };
  } finally {
    await server?.close();
    removeDir(work);
  }
}

async function measurePlain(n: number): Promise<{ create: number[]; destroy: number[] }> {
  const plain = new PlainPostgres(resolvePgBinaries(), resolveRunAs());
  try {
    await plain.destroy(await plain.create()); // warm-up: page cache, binaries
    const create: number[] = [];
    const destroy: number[] = [];
    const instances = [];
    for (let i = 0; i < n; i++) {
      const [inst, ms] = await timed(() => plain.create());
      instances.push(inst);
      create.push(ms);
    }
    for (const inst of instances) {
      const [, ms] = await timed(() => plain.destroy(inst));
      destroy.push(ms);
    }
    return { create, destroy };
  } finally {
    await plain.close();
  }
}

/** create→ready latency of ccp against plain initdb + pg_ctl start, same binaries, same run. */
export async function createPart({ n }: PartOptions): Promise<void> {
  const ccp = await measureCcp(n);
  const plain = await measurePlain(n);

  console.log(`Postgres ${ccp.pgVersion}, node ${process.version}, ${os.cpus().length} cores, sequential, after one warm-up each\n`);
  console.log(
    renderTable(`create→ready (n=${n})`, [
      { label: CCP_CREATE, samples: ccp.create },
      { label: CCP_FIRST_QUERY, samples: ccp.firstQuery },
      { label: PLAIN_CREATE, samples: plain.create },
      { label: "ratio ccp/reference", ratio: [CCP_CREATE, PLAIN_CREATE] },
    ]),
  );
  const p50 = summarize(ccp.create).p50;
  const verdict = p50 <= TARGET_P50_MS ? "met" : "NOT met";
  console.log(`target: create→ready p50 ≤ ${TARGET_P50_MS} ms: ${verdict} (p50 ${Math.round(p50)} ms)\n`);
  console.log(
    renderTable(`destroy (n=${n})`, [
      { label: CCP_DESTROY, samples: ccp.destroy },
      { label: PLAIN_DESTROY, samples: plain.destroy },
      { label: "ratio ccp/reference", ratio: [CCP_DESTROY, PLAIN_DESTROY] },
    ]),
  );
}
