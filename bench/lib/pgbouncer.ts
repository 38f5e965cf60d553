import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chownSync, closeSync, openSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { logTail, stopChild } from "./child.ts";
import { aptInstall, isRoot, which } from "./apt.ts";
import type { Owner } from "./tmp.ts";

const execFileAsync = promisify(execFile);

async function version(bin: string): Promise<string> {
  const { stdout } = await execFileAsync(bin, ["--version"]);
  const v = /PgBouncer ([\d.]+)/.exec(stdout)?.[1];
  if (!v) throw new Error(`cannot read the version of ${bin}: ${stdout}`);
  return v;
}

export type PgBouncerBinary = { readonly bin: string; readonly version: string; readonly installed: boolean } | { readonly skip: string };

/**
 * Debian's pgbouncer package, installed with apt-get when absent and we are root;
 * otherwise a reason to skip. Debian's package enables a pgbouncer service on
 * 127.0.0.1:6432 (ccpd's default wire port): where systemd started it, it is stopped
 * and disabled again, since only this bench wanted the package.
 */
export async function ensurePgBouncer(): Promise<PgBouncerBinary> {
  const found = await which("pgbouncer");
  if (found) return { bin: found, version: await version(found), installed: false };
  if (!isRoot()) return { skip: "pgbouncer is not installed and this bench is not root (apt-get install -y pgbouncer)" };
  await aptInstall("pgbouncer");
  try {
    const { stdout } = await execFileAsync("systemctl", ["is-active", "pgbouncer"]);
    if (stdout.trim() === "active") {
      await execFileAsync("systemctl", ["disable", "--now", "pgbouncer"]);
      console.log("stopped and disabled the pgbouncer.service Debian's package started");
    }
  } catch {
    // no systemd (a container), or the service is not active
  }
  const bin = await which("pgbouncer");
  if (!bin) throw new Error("apt-get installed pgbouncer, but there is no pgbouncer binary");
  return { bin, version: await version(bin), installed: true };
}

/** A free TCP port on 127.0.0.1 (free now; another process could take it before pgbouncer binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface PgBouncerOptions {
  readonly bin: string;
  /** Working directory for the ini, auth file, log; owned by `runAs` when given. */
  readonly dir: string;
  /** OS user pgbouncer runs as (it refuses root); undefined: this process's user. */
  readonly runAs: Owner | undefined;
  /** The Postgres server: its unix socket directory and port, the database and role to log in as. */
  readonly server: { readonly socketDir: string; readonly port: number; readonly database: string; readonly user: string };
  /** What clients log in with (SCRAM-SHA-256 against this plain-text password in the auth_file). */
  readonly client: { readonly database: string; readonly user: string; readonly password: string };
  readonly poolMode: "session" | "transaction";
  readonly poolSize: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;

/** pgbouncer as a foreground child process, listening on 127.0.0.1 only, no unix socket. */
export class PgBouncer {
  readonly port: number;
  readonly #child: ChildProcess;
  readonly #log: string;
  #spawnError: Error | undefined;

  private constructor(port: number, child: ChildProcess, log: string) {
    this.port = port;
    this.#child = child;
    this.#log = log;
  }

  static async start(o: PgBouncerOptions): Promise<PgBouncer> {
    const port = await freePort();
    const ini = path.join(o.dir, "pgbouncer.ini");
    const users = path.join(o.dir, "userlist.txt");
    const log = path.join(o.dir, "pgbouncer.log");
    const s = o.server;
    writeFileSync(users, `${quote(o.client.user)} ${quote(o.client.password)}\n`, { mode: 0o600 });
    writeFileSync(
      ini,
      [
        "[databases]",
        `${o.client.database} = host=${s.socketDir} port=${s.port} user=${s.user} dbname=${s.database}`,
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        `listen_port = ${port}`,
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        `auth_file = ${users}`,
        `pool_mode = ${o.poolMode}`,
        `default_pool_size = ${o.poolSize}`,
        `max_client_conn = ${o.poolSize * 2}`,
        "server_login_retry = 1",
        `logfile = ${log}`,
        "log_connections = 0",
        "log_disconnections = 0",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    if (o.runAs) for (const f of [ini, users]) chownSync(f, o.runAs.uid, o.runAs.gid);
    const fd = openSync(path.join(o.dir, "pgbouncer.stderr"), "a");
    let child: ChildProcess;
    try {
      child = spawn(o.bin, [ini], {
        cwd: o.dir,
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", LC_ALL: "C" },
        stdio: ["ignore", fd, fd],
        ...(o.runAs ? { uid: o.runAs.uid, gid: o.runAs.gid } : {}),
      });
    } finally {
      closeSync(fd);
    }
    const bouncer = new PgBouncer(port, child, log);
    child.on("error", (err) => (bouncer.#spawnError = err));
    try {
      await bouncer.#listening();
    } catch (err) {
      await bouncer.close();
      throw err;
    }
    return bouncer;
  }

  /** The pgbouncer process id (to read its CPU time from /proc). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  async #listening(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (this.#spawnError) throw new Error(`cannot start pgbouncer: ${this.#spawnError.message}`);
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
        throw new Error(`pgbouncer exited (${this.#child.exitCode ?? this.#child.signalCode}) before it listened:\n${this.logTail()}`);
      }
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(this.port, "127.0.0.1");
        s.once("connect", () => (s.destroy(), resolve(true)));
        s.once("error", () => resolve(false));
      });
      if (ok) return;
      await sleep(50);
    }
    throw new Error(`pgbouncer not listening on 127.0.0.1:${this.port} after 10 s:\n${this.logTail()}`);
  }

  logTail(): string {
    return logTail(this.#log);
  }

  /** SIGTERM (immediate shutdown: closes every client and server connection), SIGKILL after 5 s. */
  async close(): Promise<void> {
    await stopChild(this.#child);
  }
}
