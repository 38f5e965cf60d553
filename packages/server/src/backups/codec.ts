import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { closeSync, fchownSync, fdatasync, fstatSync, openSync, readFileSync, readSync, writeSync, writevSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { pipeline } from "node:stream";
import { createGunzip, constants as zlib } from "node:zlib";
import { compressSync, uncompress, uncompressSync } from "lz4-napi";

/**
 * How a backup file is stored. "lz4" (ccp's chunked LZ4, below) since the
 * restore-at-copy-speed work; "gzip" (one gzip stream, level 1) before it:
 * a manifest file without a codec is gzip, so old backups still restore.
 */
export type Codec = "gzip" | "lz4";

/** The codec new backups are written with. */
export const PACK_CODEC: Codec = "lz4";

export const storedSuffix = (codec: Codec | undefined): string => (codec === "lz4" ? ".lz4" : ".gz");

/** Raw bytes per chunk: big enough that per-chunk overhead vanishes, small enough to keep a few in flight per file. */
export const CHUNK = 1 << 20;
/** Chunks of one file being (de)compressed at once in the libuv pool while the main thread hashes and writes. */
const WINDOW = 4;
/** The compressed file is read this much at a time (frames are sliced out of it). */
const READ_BLOCK = 4 << 20;
/** A file whose first chunks all stay raw is not worth compressing: its remaining chunks are stored as they are. */
const GIVE_UP_AFTER = 8;
/**
 * An unpacked file is flushed (fdatasync, in the libuv pool) every FLUSH_EVERY
 * bytes as it is written, and at its end when it is at least FLUSH_MIN, while
 * the worker goes on decoding: the disk writes overlap the CPU work instead of
 * all waiting for Postgres's syncfs at the first start (with 24 GiB of RAM the
 * kernel starts writing back only past ~2.4 GiB dirty). Small files are left
 * to that syncfs: an fdatasync each would cost more than their bytes.
 */
const FLUSH_EVERY = 64 * CHUNK;
// The writes themselves stay synchronous on the worker's thread: handed to the libuv pool (write-behind)
// they were no faster (1 GiB: 3.5-4.4 s of unpack against 3.8-4.0 s, under load 6-7).
const FLUSH_MIN = 8 * CHUNK;

/**
 * ccp-lz4, version 1: the 8-byte MAGIC, then one frame per chunk of up to
 * CHUNK raw bytes: rawLength (u32 LE), storedLength (u32 LE, top bit set when
 * the payload is the raw bytes themselves because LZ4 did not shrink them),
 * payload. A compressed payload is lz4-napi's block format (u32 LE raw length,
 * then an LZ4 block). Chunks are independent, so they decompress in parallel;
 * the file's sha256 (in the manifest) is checked over the whole content.
 */
const MAGIC = Buffer.from("CCPLZ4\x00\x01", "latin1");
const RAW_FLAG = 0x8000_0000;
const FRAME_HEADER = 8;

/** A backup file does not decode to what its manifest says. */
export class ChecksumMismatch extends Error {}

/** Promises in flight that may reject before they are awaited: mark them handled, keep them awaitable. */
export function settled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

async function readAt(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/**
 * Sequential reads of a file in READ_BLOCK pieces, handing out exact byte
 * counts. Never reads (allocates) past the file's size: most data files are a
 * few KiB, and big idle buffers cost GC time in a busy ccpd.
 */
class BlockReader {
  readonly #fh: FileHandle;
  readonly #size: number;
  #buf: Buffer = Buffer.alloc(0);
  #pos = 0;
  #eof = false;

  constructor(fh: FileHandle, position: number, size: number) {
    this.#fh = fh;
    this.#pos = position;
    this.#size = size;
  }

  /** Exactly `n` bytes, or fewer only at the end of the file. */
  async take(n: number): Promise<Buffer> {
    while (this.#buf.length < n && !this.#eof) {
      const want = Math.max(Math.min(READ_BLOCK, this.#size - this.#pos), n - this.#buf.length);
      const more = await readAt(this.#fh, want, this.#pos);
      this.#pos += more.length;
      if (more.length === 0) this.#eof = true;
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, more]) : more;
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(out.length);
    return out;
  }
}

async function decodeFrame(payload: Buffer, rawLength: number, raw: boolean, where: string): Promise<Buffer> {
  if (raw) {
    if (payload.length !== rawLength) throw new ChecksumMismatch(`${where}: truncated chunk`);
    return payload;
  }
  // Checked before decoding: the block's own length decides what lz4 allocates.
  if (payload.length < 4 || payload.readUInt32LE(0) !== rawLength) throw new ChecksumMismatch(`${where}: corrupt chunk`);
  let out: Buffer;
  try {
    out = await uncompress(payload);
  } catch {
    throw new ChecksumMismatch(`${where}: corrupt chunk`);
  }
  if (out.length !== rawLength) throw new ChecksumMismatch(`${where}: corrupt chunk`);
  return out;
}

/** A frame's header, checked before its payload is read (both readers: streaming and the workers' synchronous one). */
function frameHeader(header: Buffer, where: string): { rawLength: number; storedLength: number; raw: boolean } {
  if (header.length < FRAME_HEADER) throw new ChecksumMismatch(`${where}: truncated chunk`);
  const rawLength = header.readUInt32LE(0);
  const stored = header.readUInt32LE(4);
  const storedLength = stored & ~RAW_FLAG;
  if (rawLength === 0 || rawLength > CHUNK || storedLength > CHUNK + 1024) throw new ChecksumMismatch(`${where}: corrupt chunk header`);
  return { rawLength, storedLength, raw: (stored & RAW_FLAG) !== 0 };
}

/** The content of a ccp-lz4 file, chunk by chunk in order, WINDOW chunks decompressing ahead of the consumer. */
async function* lz4Content(src: string, where: string): AsyncGenerator<Buffer> {
  const fh = await open(src, "r");
  try {
    const magic = await readAt(fh, MAGIC.length, 0);
    if (!magic.equals(MAGIC)) throw new ChecksumMismatch(`${where}: not a ccp-lz4 file`);
    const reader = new BlockReader(fh, MAGIC.length, (await fh.stat()).size);
    const ahead: Promise<Buffer>[] = [];
    for (;;) {
      const header = await reader.take(FRAME_HEADER);
      if (header.length === 0) break;
      const { rawLength, storedLength, raw } = frameHeader(header, where);
      const payload = await reader.take(storedLength);
      if (payload.length < storedLength) throw new ChecksumMismatch(`${where}: truncated chunk`);
      ahead.push(settled(decodeFrame(payload, rawLength, raw, where)));
      if (ahead.length >= WINDOW) yield await (ahead.shift() as Promise<Buffer>);
    }
    while (ahead.length) yield await (ahead.shift() as Promise<Buffer>);
  } finally {
    await fh.close();
  }
}

async function* gzipContent(src: string, where: string): AsyncGenerator<Buffer> {
  try {
    // pipeline, not pipe: a read error (a missing file) must reach the iterator, not go unhandled.
    yield* pipeline(createReadStream(src, { highWaterMark: CHUNK }), createGunzip({ finishFlush: zlib.Z_SYNC_FLUSH, chunkSize: CHUNK }), () => undefined) as AsyncIterable<Buffer>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code?.startsWith("Z_")) throw new ChecksumMismatch(`${where}: corrupt gzip data`);
    throw err;
  }
}

/** What a stored backup file decodes to, in order (not yet checked against the manifest: see `checked`). */
export function storedContent(src: string, codec: Codec | undefined, where: string): AsyncGenerator<Buffer> {
  return codec === "lz4" ? lz4Content(src, where) : gzipContent(src, where);
}

/**
 * The content of a stored file, chunk by chunk, hashed on the way; throws
 * ChecksumMismatch after the last chunk when it does not match the manifest
 * (or earlier, on a corrupt or truncated chunk), so a consumer never finishes
 * with bad bytes unnoticed.
 */
export async function* checked(src: string, expected: { path: string; size: number; sha256: string; codec?: Codec }): AsyncGenerator<Buffer> {
  const h = createHash("sha256");
  let size = 0;
  for await (const chunk of storedContent(src, expected.codec, expected.path)) {
    h.update(chunk);
    size += chunk.length;
    if (size > expected.size) throw new ChecksumMismatch(`${expected.path}: content does not match the backup's manifest`);
    yield chunk;
  }
  if (size !== expected.size || h.digest("hex") !== expected.sha256) throw new ChecksumMismatch(`${expected.path}: content does not match the backup's manifest`);
}

/**
 * Where one file's (un)packing spent its time, in ms, measured in the codec
 * worker that did it (codec-pool.ts): the stages run one after the other on
 * that thread, so they add up. `cpu` and `waited` are the thread's own
 * (/proc/thread-self/schedstat): time on a CPU, and time runnable but waiting
 * for one, which says whether Postgres (in ccp's heavier cgroups) or anything
 * else starved the copy.
 */
export interface CodecStats {
  read: number;
  codec: number;
  hash: number;
  write: number;
  chown: number;
  /** Waiting at a file's end for its flushes (unpack only). */
  flush: number;
  cpu: number;
  waited: number;
}

export const emptyStats = (): CodecStats => ({ read: 0, codec: 0, hash: 0, write: 0, chown: 0, flush: 0, cpu: 0, waited: 0 });

export function addStats(into: CodecStats, more: CodecStats): void {
  for (const k of Object.keys(into) as (keyof CodecStats)[]) into[k] += more[k];
}

/** This thread's CPU time and run-queue wait so far, ms (0 where /proc does not say). */
function schedstat(): { cpu: number; waited: number } {
  try {
    const [cpu, waited] = readFileSync("/proc/thread-self/schedstat", "latin1").split(" ").map(Number);
    return { cpu: (cpu ?? 0) / 1e6, waited: (waited ?? 0) / 1e6 };
  } catch {
    return { cpu: 0, waited: 0 };
  }
}

/** Times synchronous stages into a CodecStats. */
class Stopwatch {
  readonly stats = emptyStats();
  readonly #sched = schedstat();
  #t = performance.now();

  lap(stage: Exclude<keyof CodecStats, "cpu" | "waited">): void {
    const now = performance.now();
    this.stats[stage] += now - this.#t;
    this.#t = now;
  }

  done(): CodecStats {
    const end = schedstat();
    this.stats.cpu = end.cpu - this.#sched.cpu;
    this.stats.waited = end.waited - this.#sched.waited;
    return this.stats;
  }
}

function readFully(fd: number, buf: Buffer, offset: number, length: number, position: number): number {
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, offset + got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function writeFully(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, position + done);
}

/**
 * Synchronous sequential reads of a file, handing out exact byte counts from
 * one reused buffer: a slice is valid until the next take (the worker
 * consumes every slice before it reads on).
 */
class SyncBlockReader {
  readonly #fd: number;
  #buf = Buffer.allocUnsafe(READ_BLOCK);
  #start = 0;
  #end = 0;
  #pos: number;
  #eof = false;

  constructor(fd: number, position: number) {
    this.#fd = fd;
    this.#pos = position;
  }

  take(n: number): Buffer {
    if (this.#end - this.#start < n && !this.#eof) {
      const have = this.#end - this.#start;
      if (n > this.#buf.length) {
        const bigger = Buffer.allocUnsafe(n);
        this.#buf.copy(bigger, 0, this.#start, this.#end);
        this.#buf = bigger;
      } else {
        this.#buf.copy(this.#buf, 0, this.#start, this.#end);
      }
      this.#start = 0;
      this.#end = have;
      while (this.#end < n && !this.#eof) {
        const got = readSync(this.#fd, this.#buf, this.#end, this.#buf.length - this.#end, this.#pos);
        if (got === 0) this.#eof = true;
        this.#pos += got;
        this.#end += got;
      }
    }
    const out = this.#buf.subarray(this.#start, Math.min(this.#end, this.#start + n));
    this.#start += out.length;
    return out;
  }
}

/**
 * unpackFile's work for a ccp-lz4 file, synchronously, on a codec worker's
 * thread (codec-pool.ts): read → check the frame → decompress → hash → write,
 * chunk by chunk (flushing big files as they go, FLUSH_EVERY), then the
 * size and sha256 against the manifest, then the owner. Throws ChecksumMismatch on the first bad chunk or at the end; `dst`
 * then holds a partial file the caller removes with the rest of the target.
 */
export async function unpackLz4(src: string, dst: string | undefined, expected: { path: string; size: number; sha256: string }, owner: { uid: number; gid: number } | undefined): Promise<CodecStats> {
  const clock = new Stopwatch();
  const where = expected.path;
  const input = openSync(src, "r");
  let output: number | undefined;
  const flushes: Promise<void>[] = [];
  const flush = (fd: number) => flushes.push(settled(new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())))));
  try {
    output = dst === undefined ? undefined : openSync(dst, "w", 0o600);
    const reader = new SyncBlockReader(input, 0);
    if (!reader.take(MAGIC.length).equals(MAGIC)) throw new ChecksumMismatch(`${where}: not a ccp-lz4 file`);
    const h = createHash("sha256");
    let size = 0;
    for (;;) {
      const header = reader.take(FRAME_HEADER);
      if (header.length === 0) break;
      const { rawLength, storedLength, raw } = frameHeader(header, where);
      const payload = reader.take(storedLength);
      if (payload.length < storedLength) throw new ChecksumMismatch(`${where}: truncated chunk`);
      clock.lap("read");
      let chunk: Buffer;
      if (raw) {
        if (payload.length !== rawLength) throw new ChecksumMismatch(`${where}: truncated chunk`);
        chunk = payload;
      } else {
        // Checked before decoding: the block's own length decides what lz4 allocates.
        if (payload.length < 4 || payload.readUInt32LE(0) !== rawLength) throw new ChecksumMismatch(`${where}: corrupt chunk`);
        try {
          chunk = uncompressSync(payload);
        } catch {
          throw new ChecksumMismatch(`${where}: corrupt chunk`);
        }
        if (chunk.length !== rawLength) throw new ChecksumMismatch(`${where}: corrupt chunk`);
        clock.lap("codec");
      }
      if (size + chunk.length > expected.size) throw new ChecksumMismatch(`${where}: content does not match the backup's manifest`);
      h.update(chunk);
      clock.lap("hash");
      if (output !== undefined) writeFully(output, chunk, size);
      size += chunk.length;
      if (output !== undefined && size % FLUSH_EVERY === 0) flush(output);
      clock.lap("write");
    }
    const digest = h.digest("hex");
    clock.lap("hash");
    if (size !== expected.size || digest !== expected.sha256) throw new ChecksumMismatch(`${where}: content does not match the backup's manifest`);
    if (output !== undefined && owner) fchownSync(output, owner.uid, owner.gid);
    clock.lap("chown");
    if (output !== undefined && size >= FLUSH_MIN) flush(output);
    await Promise.all(flushes);
    clock.lap("flush");
    return clock.done();
  } finally {
    // Never closed under a pending fdatasync (it would flush whatever file gets the descriptor next).
    await Promise.allSettled(flushes);
    if (output !== undefined) closeSync(output);
    closeSync(input);
  }
}

/**
 * Write `src` to `dst` as ccp-lz4, synchronously on a codec worker's thread
 * (codec-pool.ts): read a chunk → hash → compress (kept only where it shrinks;
 * a file whose first GIVE_UP_AFTER chunks all stay raw is stored raw) → write.
 * A file still growing past its size at the start (a backup copies a running
 * server's files) is read on in 64 KiB pieces until a short read. Returns the
 * content's size and sha256, or undefined when `src` vanished (dropped relation).
 */
export function packLz4Sync(src: string, dst: string): { size: number; sha256: string; stats: CodecStats } | undefined {
  const clock = new Stopwatch();
  let input: number;
  try {
    input = openSync(src, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  try {
    const output = openSync(dst, "w", 0o600);
    try {
      const h = createHash("sha256");
      const expected = fstatSync(input).size;
      const buf = Buffer.allocUnsafe(Math.max(1 << 16, Math.min(CHUNK, expected)));
      const header = Buffer.allocUnsafe(FRAME_HEADER);
      let size = 0;
      let chunks = 0;
      let compressed = 0;
      writeFully(output, MAGIC, 0);
      let position = MAGIC.length;
      for (;;) {
        const want = size < expected ? Math.min(CHUNK, expected - size) : 1 << 16;
        const got = readFully(input, buf, 0, want, size);
        clock.lap("read");
        if (got === 0) break;
        const chunk = buf.subarray(0, got);
        h.update(chunk);
        size += got;
        clock.lap("hash");
        let payload: Buffer = chunk;
        if (chunks++ < GIVE_UP_AFTER || compressed > 0) {
          const packed = compressSync(chunk);
          if (packed.length < chunk.length) payload = packed;
          clock.lap("codec");
        }
        const raw = payload === chunk;
        if (!raw) compressed++;
        header.writeUInt32LE(got, 0);
        header.writeUInt32LE(raw ? (got | RAW_FLAG) >>> 0 : payload.length, 4);
        const total = FRAME_HEADER + payload.length;
        const written = writevSync(output, [header, payload], position);
        // A short write (rare on a regular file): write what is left.
        if (written < total) writeFully(output, Buffer.concat([header, payload]).subarray(written), position + written);
        position += total;
        clock.lap("write");
        if (got < want) break;
      }
      const sha256 = h.digest("hex");
      clock.lap("hash");
      return { size, sha256, stats: clock.done() };
    } finally {
      closeSync(output);
    }
  } finally {
    closeSync(input);
  }
}
