import os from "node:os";
import { Worker } from "node:worker_threads";
import { ChecksumMismatch, type CodecStats } from "./codec.js";

/** One file for a codec worker (codec-worker.ts). */
export type CodecTask = (
  | { readonly op: "pack"; readonly src: string; readonly dst: string }
  /** A plain copy (FICLONE where the filesystem has it, else in the kernel), then the owner: WAL staged into pg_wal. */
  | { readonly op: "copy"; readonly src: string; readonly dst: string; readonly owner: { readonly uid: number; readonly gid: number } | undefined }
  | {
      readonly op: "unpack";
      readonly src: string;
      readonly dst: string | undefined;
      readonly expected: { readonly path: string; readonly size: number; readonly sha256: string };
      readonly owner: { readonly uid: number; readonly gid: number } | undefined;
    }
) & {
  /** Tests only (crashCodecWorkerOn): the worker ends its thread with this code instead of doing the task. */
  readonly exit?: number;
};

export type CodecReply =
  | { readonly ok: true; readonly packed?: { readonly size: number; readonly sha256: string }; readonly stats?: CodecStats }
  | { readonly ok: false; readonly mismatch: boolean; readonly message: string; readonly code?: string };

/** A codec worker ended (crashed, killed) while it had a file: the operation is refused, nothing of it is used. */
export class CodecWorkerFailed extends Error {}

/** Workers: one per core, at least two (a big file and the rest overlap), at most eight. */
export const CODEC_WORKERS = Math.min(8, Math.max(2, os.availableParallelism()));
/** An idle worker ends after this long: a ccpd between backups holds no threads. */
const IDLE_MS = 30_000;

interface Job {
  readonly task: CodecTask;
  readonly resolve: (reply: CodecReply & { ok: true }) => void;
  readonly reject: (err: Error) => void;
}

/**
 * Built, the worker is codec-worker.js beside this file. Under tsx (tests run
 * the sources) it is codec-worker.ts, which a worker thread cannot load by
 * itself on Node 20 (tsx's loader hooks do not reach workers): it registers
 * tsx first.
 */
function newWorker(): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./codec-worker.js", import.meta.url));
  const url = new URL("./codec-worker.ts", import.meta.url).href;
  const tsx = import.meta.resolve("tsx/esm/api");
  return new Worker(`import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(url)}); });`, { eval: true });
}

/**
 * A small pool of worker threads that (un)pack backup files (ccp-lz4) whole,
 * hashing as they go. Why not the main thread: hashing and (de)compressing a
 * GiB there competed with everything else ccpd does, and lz4-napi's async
 * calls queued in the 4-thread libuv pool behind (and ahead of) the file reads
 * and writes of the same restore. Files queue here; each worker takes the next
 * as it finishes one (callers submit largest first).
 */
class CodecPool {
  readonly #size: number;
  readonly #idle: Worker[] = [];
  readonly #busy = new Map<Worker, Job>();
  readonly #queue: Job[] = [];
  readonly #timers = new Map<Worker, NodeJS.Timeout>();
  #spawned = 0;
  #crashOn: string | undefined;

  constructor(size: number) {
    this.#size = size;
  }

  run(task: CodecTask): Promise<CodecReply & { ok: true }> {
    return new Promise((resolve, reject) => {
      const crash = this.#crashOn !== undefined && task.src.endsWith(this.#crashOn);
      if (crash) this.#crashOn = undefined;
      this.#queue.push({ task: crash ? { ...task, exit: 70 } : task, resolve, reject });
      this.#dispatch();
    });
  }

  /** Tests: the next task whose source path ends with `suffix` finds its worker dying under it. */
  crashOn(suffix: string): void {
    this.#crashOn = suffix;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let worker = this.#idle.pop();
      if (!worker) {
        if (this.#spawned >= this.#size) return;
        worker = this.#spawn();
      }
      const timer = this.#timers.get(worker);
      if (timer) clearTimeout(timer);
      this.#timers.delete(worker);
      const job = this.#queue.shift() as Job;
      this.#busy.set(worker, job);
      // Referenced while it has a file: a pending restore keeps the process alive, an idle pool does not.
      worker.ref();
      worker.postMessage(job.task);
    }
  }

  #spawn(): Worker {
    const worker = newWorker();
    this.#spawned++;
    worker.on("message", (reply: CodecReply) => {
      const job = this.#busy.get(worker);
      this.#busy.delete(worker);
      worker.unref();
      this.#idle.push(worker);
      this.#timers.set(
        worker,
        setTimeout(() => void worker.terminate(), IDLE_MS).unref(),
      );
      if (job) {
        if (reply.ok) job.resolve(reply);
        else if (reply.mismatch) job.reject(new ChecksumMismatch(reply.message));
        else job.reject(Object.assign(new Error(reply.message), reply.code ? { code: reply.code } : {}));
      }
      this.#dispatch();
    });
    // An uncaught error in the worker (or one loading it) is followed by its exit: the job is settled there, with the why.
    let why = "";
    worker.on("error", (err) => void (why = `: ${err.message}`));
    worker.on("exit", (code) => {
      this.#spawned--;
      const i = this.#idle.indexOf(worker);
      if (i >= 0) this.#idle.splice(i, 1);
      clearTimeout(this.#timers.get(worker));
      this.#timers.delete(worker);
      const job = this.#busy.get(worker);
      this.#busy.delete(worker);
      job?.reject(new CodecWorkerFailed(`the codec worker (un)packing ${job.task.src} stopped (exit code ${code}${why})`));
      this.#dispatch();
    });
    return worker;
  }
}

/** The process's one codec pool (backups, restores and PITR of every database share the cores). */
export const codecPool = new CodecPool(CODEC_WORKERS);
