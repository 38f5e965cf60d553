import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { resolveServerConfig, startServer, type RunningServer } from "../../packages/server/dist/index.js";
import type { PartOptions } from "../lib/part.ts";
import { summarize, timed } from "../lib/stats.ts";
import { renderTable } from "../lib/table.ts";
import { makeTempDir, removeDir } from "../lib/tmp.ts";

const execFileAsync = promisify(execFile);
const CCP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "packages", "cli", "bin", "ccp.js");
const TARGET_MS = 100;

const BARE = "node -e 0 (reference)";
const VERSION = "ccp --version";
const LIST = "ccp db list (3 databases)";
const LIST_API = "GET /v1/databases (ccpd's part of it)";

/**
 * CLI start-up: `ccp --version` and `ccp db list` as whole processes, beside a
 * bare Node start, in rotated order. The client-side part of `db list` is its
 * wall time less ccpd's own answer time for the same request.
 */
export async function cliPart({ n }: PartOptions): Promise<void> {
  const work = makeTempDir("ccp-bench-cli-");
  let server: RunningServer | undefined;
  try {
    const env = { ...process.env, XDG_CONFIG_HOME: path.join(work, "config"), CCP_LOG_LEVEL: "silent", NO_COLOR: "1" };
    server = await startServer(resolveServerConfig({ dataDir: path.join(work, "data"), port: 0, wirePort: 0, backupAt: "off" }, env));
    for (const name of ["cli-a", "cli-b", "cli-c"]) await server.databases.create(name);
    const key = server.createdAdminKey as string;
    const url = server.url;
    const samples = new Map<string, number[]>([BARE, VERSION, LIST, LIST_API].map((k) => [k, []]));
    const runs: [string, () => Promise<unknown>][] = [
      [BARE, () => execFileAsync(process.execPath, ["-e", "0"], { env })],
      [VERSION, () => execFileAsync(process.execPath, [CCP, "--version"], { env })],
      [LIST, () => execFileAsync(process.execPath, [CCP, "db", "list"], { env, cwd: work })],
      [LIST_API, async () => (await fetch(`${url}/v1/databases`, { headers: { authorization: `Bearer ${key}` } })).json()],
    ];
    for (let i = -2; i < n; i++) {
      for (let j = 0; j < runs.length; j++) {
        const [label, run] = runs[(i + 2 + j) % runs.length] as [string, () => Promise<unknown>];
        const [, ms] = await timed(run);
        if (i >= 0) samples.get(label)?.push(ms);
      }
    }
    const at = (k: string) => samples.get(k) as number[];
    console.log(`node ${process.version}; each command spawned ${n} times after 2 warm-ups, in rotated order`);
    console.log(
      renderTable(`CLI start-up (n=${n}), ms`, [
        { label: BARE, samples: at(BARE) },
        { label: VERSION, samples: at(VERSION) },
        { label: LIST, samples: at(LIST) },
        { label: LIST_API, samples: at(LIST_API) },
        { label: "ratio --version/bare node", ratio: [VERSION, BARE] },
      ]),
    );
    const bare = summarize(at(BARE)).p50;
    const version = summarize(at(VERSION)).p50 - bare;
    const list = summarize(at(LIST)).p50 - summarize(at(LIST_API)).p50 - bare;
    const verdict = (x: number) => (x <= TARGET_MS ? "met" : "NOT met");
    console.log(`target: within ${TARGET_MS} ms of a bare Node start (p50): --version +${Math.round(version)} ms ${verdict(version)}; db list, client side, +${Math.round(list)} ms ${verdict(list)}`);
  } finally {
    await server?.close();
    removeDir(work);
  }
}
