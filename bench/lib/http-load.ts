import { Worker } from "node:worker_threads";

/** A fixed-duration keep-alive POST load; every request body gets a fresh random integer. */
export interface HttpLoad {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Request body; each occurrence of `placeholder` is replaced by a random integer in [min, max] per request. */
  readonly body: string;
  readonly random: { readonly placeholder: string; readonly min: number; readonly max: number };
  /** Keep-alive connections, each with one request in flight. */
  readonly connections: number;
  readonly seconds: number;
}

const WORKER = new URL("./http-load-worker.ts", import.meta.url);

export interface HttpLoadResult {
  /** Latency of every 2xx response, in ms (hrtime, sub-µs resolution). */
  readonly latencies: number[];
  /** Wall time of the run, in seconds. */
  readonly elapsed: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
}

/**
 * Run the load with autocannon in a worker thread, so the load generator has an
 * event loop of its own and does not compete with an in-process ccpd for one.
 */
export function runHttpLoad(load: HttpLoad): Promise<HttpLoadResult> {
  return new Promise((resolve, reject) => {
    // Node 20 does not apply `--import tsx` to a worker's entry module: register tsx in the worker first.
    const boot = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER.href)}); });`;
    const worker = new Worker(boot, { eval: true, workerData: load });
    let result: HttpLoadResult | undefined;
    worker.once("message", (msg: HttpLoadResult) => (result = msg));
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (result) resolve(result);
      else reject(new Error(`load worker exited with code ${code} and no result`));
    });
  });
}
