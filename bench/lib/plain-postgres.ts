import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import type { PgBinaries } from "../../packages/server/dist/index.js";
import { makeDirFor, makeTempDir, removeDir, type Owner } from "./tmp.ts";

const execFileAsync = promisify(execFile);

/** The flags of the reference initdb: defaults, plus what a container needs. */
export const PLAIN_INITDB_FLAGS = ["--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"] as const;

export interface Instance {
  readonly data: string;
  readonly run: string;
  readonly log: string;
}

/**
 * The reference: Postgres provisioned the plain way, `initdb` then
 * `pg_ctl start -w`, unix socket only, as `owner` when given (ccpd runs
 * instances as an unprivileged user when it is root, and so does this).
 */
export class PlainPostgres {
  readonly #bin: PgBinaries;
  readonly #owner: Owner | undefined;
  readonly #root: string;
  readonly #running = new Set<Instance>();
  #count = 0;

  constructor(bin: PgBinaries, owner: Owner | undefined) {
    this.#bin = bin;
    this.#owner = owner;
    this.#root = makeTempDir("ccp-bench-plain-", owner);
  }

  async #run(file: string, args: readonly string[]): Promise<void> {
    await execFileAsync(file, args, {
      ...(this.#owner ? { uid: this.#owner.uid, gid: this.#owner.gid } : {}),
      env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", LC_ALL: "C" },
    });
  }

  #pgCtl(args: readonly string[]): Promise<void> {
    return this.#run(path.join(this.#bin.bindir, "pg_ctl"), args);
  }

  /** initdb + pg_ctl start -w: returns once pg_ctl says the server accepts connections. */
  async create(): Promise<Instance> {
    const root = makeDirFor(path.join(this.#root, `i${++this.#count}`), this.#owner);
    const inst = { data: path.join(root, "data"), run: makeDirFor(path.join(root, "run"), this.#owner), log: path.join(root, "postgres.log") };
    await this.#run(this.#bin.initdb, ["-D", inst.data, ...PLAIN_INITDB_FLAGS]);
    this.#running.add(inst);
    await this.#pgCtl(["start", "-w", "-D", inst.data, "-l", inst.log, "-o", `-c listen_addresses= -k ${inst.run}`]);
    return inst;
  }

  /** pg_ctl stop -m fast -w; the data stays (start() brings it back). */
  async stop(inst: Instance): Promise<void> {
    await this.#pgCtl(["stop", "-m", "fast", "-w", "-D", inst.data]);
  }

  /** pg_ctl start -w of a stopped data dir. */
  async start(inst: Instance): Promise<void> {
    await this.#pgCtl(["start", "-w", "-D", inst.data, "-l", inst.log, "-o", `-c listen_addresses= -k ${inst.run}`]);
  }

  /** pg_ctl stop -m fast -w, then rm -rf. */
  async destroy(inst: Instance): Promise<void> {
    await this.#pgCtl(["stop", "-m", "fast", "-w", "-D", inst.data]);
    this.#running.delete(inst);
    removeDir(path.dirname(inst.data));
  }

  /** Stop whatever still runs (after an error) and remove every directory. */
  async close(): Promise<void> {
    for (const inst of this.#running) {
      await this.#pgCtl(["stop", "-m", "immediate", "-w", "-D", inst.data]).catch(() => undefined);
    }
    this.#running.clear();
    removeDir(this.#root);
  }
}
