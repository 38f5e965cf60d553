/** Worker side of runHttpLoad (http-load.ts): one autocannon run, latencies posted back. */
import { parentPort, workerData } from "node:worker_threads";
import autocannon from "autocannon";
import type { HttpLoad, HttpLoadResult } from "./http-load.ts";

const load = workerData as HttpLoad;
const { placeholder, min, max } = load.random;
const [before, after] = load.body.split(placeholder);
if (before === undefined || after === undefined || load.body.split(placeholder).length !== 2) {
  throw new Error(`the body must hold the placeholder ${placeholder} exactly once: ${load.body}`);
}

const latencies: number[] = [];
const result = await new Promise<autocannon.Result>((resolve, reject) => {
  const instance = autocannon(
    {
      url: load.url,
      method: "POST",
      headers: { ...load.headers, "content-type": "application/json" },
      connections: load.connections,
      pipelining: 1,
      duration: load.seconds,
      timeout: 30,
      requests: [{ setupRequest: (req) => ({ ...req, body: `${before}${min + Math.floor(Math.random() * (max - min + 1))}${after}` }) }],
    },
    (err, res) => (err ? reject(err as Error) : resolve(res)),
  );
  instance.on("response", (_client, statusCode, _bytes, responseTime) => {
    if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
  });
});
const out: HttpLoadResult = { latencies, elapsed: result.duration, non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts };
parentPort?.postMessage(out);
