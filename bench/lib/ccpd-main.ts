/**
 * A ccpd in a process of its own, for parts that compare ccpds side by side: each
 * then has its own event loop and its own CPU accounting (/proc/<pid>/stat), and
 * none runs in the bench's process. argv[2]: JSON { dataDir, metrics?, env? }.
 * Prints one JSON line { url, key, pid } when up; SIGTERM closes it.
 */
import { resolveServerConfig, startServer } from "../../packages/server/dist/index.js";

const o = JSON.parse(process.argv[2] ?? "{}") as { dataDir: string; metrics?: boolean; env?: Record<string, string> };
const server = await startServer(resolveServerConfig({ dataDir: o.dataDir, port: 0, wirePort: 0, ...(o.metrics === undefined ? {} : { metrics: o.metrics }) }, { ...process.env, ...o.env }));
process.stdout.write(`${JSON.stringify({ url: server.url, key: server.createdAdminKey, pid: process.pid })}\n`);
const stop = () => void server.close().then(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
