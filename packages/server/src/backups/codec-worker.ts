import { chownSync, constants, copyFileSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { ChecksumMismatch, packLz4Sync, unpackLz4 } from "./codec.js";
import type { CodecReply, CodecTask } from "./codec-pool.js";

/**
 * A codec worker (codec-pool.ts): packs and unpacks whole backup files with
 * synchronous reads, lz4 calls and writes on its own thread, so neither
 * ccpd's main thread nor the libuv pool it shares with every socket and file
 * of ccpd is in the loop.
 */
async function run(task: CodecTask): Promise<CodecReply> {
  try {
    if (task.exit !== undefined) process.exit(task.exit);
    if (task.op === "copy") {
      copyFileSync(task.src, task.dst, constants.COPYFILE_FICLONE);
      if (task.owner) chownSync(task.dst, task.owner.uid, task.owner.gid);
      return { ok: true };
    }
    if (task.op === "pack") {
      const packed = packLz4Sync(task.src, task.dst);
      return packed ? { ok: true, packed: { size: packed.size, sha256: packed.sha256 }, stats: packed.stats } : { ok: true };
    }
    return { ok: true, stats: await unpackLz4(task.src, task.dst, task.expected, task.owner) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, mismatch: err instanceof ChecksumMismatch, message: e.message ?? String(err), ...(typeof e.code === "string" ? { code: e.code } : {}) };
  }
}

parentPort?.on("message", (task: CodecTask) => void run(task).then((reply) => parentPort?.postMessage(reply)));
