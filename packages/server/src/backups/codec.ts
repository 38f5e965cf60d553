import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { pipeline } from "node:stream";
import { createGunzip, constants as zlib } from "node:zlib";
import { compress, uncompress } from "lz4-napi";

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
      if (header.length < FRAME_HEADER) throw new ChecksumMismatch(`${where}: truncated chunk`);
      const rawLength = header.readUInt32LE(0);
      const stored = header.readUInt32LE(4);
      const storedLength = stored & ~RAW_FLAG;
      if (rawLength === 0 || rawLength > CHUNK || storedLength > CHUNK + 1024) throw new ChecksumMismatch(`${where}: corrupt chunk header`);
      const payload = await reader.take(storedLength);
      if (payload.length < storedLength) throw new ChecksumMismatch(`${where}: truncated chunk`);
      ahead.push(settled(decodeFrame(payload, rawLength, (stored & RAW_FLAG) !== 0, where)));
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

async function encodeFrame(chunk: Buffer, tryCompress: boolean): Promise<Buffer[]> {
  const header = Buffer.allocUnsafe(FRAME_HEADER);
  header.writeUInt32LE(chunk.length, 0);
  if (tryCompress) {
    const packed = await compress(chunk);
    if (packed.length < chunk.length) {
      header.writeUInt32LE(packed.length, 4);
      return [header, packed];
    }
  }
  header.writeUInt32LE((chunk.length | RAW_FLAG) >>> 0, 4);
  return [header, chunk];
}

/**
 * Write `src` to `dst` as ccp-lz4, hashing the content on the way (one pass:
 * read → hash → compress in the libuv pool, WINDOW chunks at once → write in
 * order). Resolves to the content's size and sha256.
 */
export async function packLz4(src: FileHandle, dst: FileHandle): Promise<{ size: number; sha256: string }> {
  const h = createHash("sha256");
  let size = 0;
  let position = 0;
  let chunks = 0;
  let compressed = 0;
  const ahead: Promise<Buffer[]>[] = [];
  const flush = async () => {
    const frame = await (ahead.shift() as Promise<Buffer[]>);
    if (((frame[0] as Buffer).readUInt32LE(4) & RAW_FLAG) === 0) compressed++;
    const total = frame.reduce((n, b) => n + b.length, 0);
    let { bytesWritten } = await dst.writev(frame, position);
    // A short write (rare on a regular file): write what is left.
    while (bytesWritten < total) bytesWritten += (await dst.write(Buffer.concat(frame).subarray(bytesWritten), 0, total - bytesWritten, position + bytesWritten)).bytesWritten;
    position += total;
  };
  position += (await dst.write(MAGIC, 0, MAGIC.length, 0)).bytesWritten;
  // Sized from the file, not CHUNK: most are a few KiB (one growing meanwhile is read on in 64 KiB pieces).
  const expected = (await src.stat()).size;
  for (;;) {
    const want = size < expected ? Math.min(CHUNK, expected - size) : 1 << 16;
    const chunk = await readAt(src, want, size);
    if (chunk.length === 0) break;
    h.update(chunk);
    size += chunk.length;
    ahead.push(settled(encodeFrame(chunk, chunks++ < GIVE_UP_AFTER || compressed > 0)));
    if (ahead.length >= WINDOW) await flush();
    if (chunk.length < want) break;
  }
  while (ahead.length) await flush();
  return { size, sha256: h.digest("hex") };
}
