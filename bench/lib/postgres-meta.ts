import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { logTail, stopChild } from "./child.ts";

const execFileAsync = promisify(execFile);

/** The peer the gateway is compared with, pinned; installed on demand, never a project dependency. */
export const PG_META_VERSION = "0.99.0";
const PACKAGE = "@supabase/postgres-meta";
/** Gitignored install prefix, kept between runs as a cache. */
const PEERS = fileURLToPath(new URL("../.peers/", import.meta.url));
const PACKAGE_DIR = path.join(PEERS, "node_modules", ...PACKAGE.split("/"));

function installedVersion(): string | undefined {
  try {
    return (JSON.parse(readFileSync(path.join(PACKAGE_DIR, "package.json"), "utf8")) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** npm install the pinned postgres-meta into bench/.peers/ unless it is there already; returns its server entry. */
export async function installPostgresMeta(): Promise<string> {
  if (installedVersion() !== PG_META_VERSION) {
    console.log(`installing ${PACKAGE}@${PG_META_VERSION} into ${path.relative(process.cwd(), PEERS)}/ …`);
    await execFileAsync(
      "npm",
      ["install", "--prefix", PEERS, `${PACKAGE}@${PG_META_VERSION}`, "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    if (installedVersion() !== PG_META_VERSION) throw new Error(`npm did not install ${PACKAGE}@${PG_META_VERSION} into ${PEERS}`);
  }
  const entry = path.join(PACKAGE_DIR, "dist", "server", "server.js");
  if (!existsSync(entry)) throw new Error(`${PACKAGE}@${PG_META_VERSION} has no ${entry}`);
  return entry;
}

function canListen(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(undefined));
    srv.listen(port, "127.0.0.1", () => {
      const got = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(got));
    });
  });
}

/** A free port whose successor is free too: postgres-meta serves its admin app on PG_META_PORT + 1. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await canListen(0);
    if (port !== undefined && port < 65535 && (await canListen(port + 1)) !== undefined) return port;
  }
  throw new Error("no two consecutive free ports on 127.0.0.1");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** postgres-meta as a child process, pointed at one database by connection string. */
export class PostgresMeta {
  readonly url: string;
  readonly #child: ChildProcess;
  readonly #log: string;

  private constructor(url: string, child: ChildProcess, log: string) {
    this.url = url;
    this.#child = child;
    this.#log = log;
  }

  /** Start `node dist/server/server.js` and wait until GET /health answers. */
  static async start(entry: string, dbUrl: string, logFile: string): Promise<PostgresMeta> {
    const port = await freePortPair();
    const fd = openSync(logFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [entry], {
        cwd: path.dirname(entry),
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", PG_META_HOST: "127.0.0.1", PG_META_PORT: String(port), PG_META_DB_URL: dbUrl },
        stdio: ["ignore", fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    const meta = new PostgresMeta(`http://127.0.0.1:${port}`, child, logFile);
    try {
      await meta.#ready();
    } catch (err) {
      await meta.close();
      throw err;
    }
    return meta;
  }

  async #ready(): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
        throw new Error(`postgres-meta exited (${this.#child.exitCode ?? this.#child.signalCode}) before it was ready:\n${this.logTail()}`);
      }
      const ok = await fetch(`${this.url}/health`).then(
        (res) => res.ok,
        () => false,
      );
      if (ok) return;
      await sleep(100);
    }
    throw new Error(`postgres-meta not ready after 30 s:\n${this.logTail()}`);
  }

  logTail(): string {
    return logTail(this.#log);
  }

  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  async close(): Promise<void> {
    await stopChild(this.#child);
  }
}
