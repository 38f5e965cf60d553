import type { Duplex } from "node:stream";

/**
 * The few protocol messages the proxy speaks itself, during start-up and
 * authentication only; after that it forwards bytes untouched. Everything here
 * is the documented v3 format (Postgres docs, "Message Formats").
 */
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;
export const PROTOCOL_3_0 = 196608;
/** Larger start-up packets are refused (Postgres's own limit is 10000 bytes). */
export const MAX_STARTUP_PACKET = 10_000;

/** A typed message: byte type, int32 length (including itself), body. */
export function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

const cstr = (s: string) => Buffer.from(`${s}\0`, "utf8");

export const authenticationOk = () => message("R", int32(0));
export const authenticationCleartextPassword = () => message("R", int32(3));
export const authenticationSasl = (mechanisms: string[]) => message("R", Buffer.concat([int32(10), ...mechanisms.map(cstr), Buffer.from([0])]));
export const authenticationSaslContinue = (data: string) => message("R", Buffer.concat([int32(11), Buffer.from(data, "utf8")]));
export const authenticationSaslFinal = (data: string) => message("R", Buffer.concat([int32(12), Buffer.from(data, "utf8")]));
export const backendKeyData = (pid: number, secret: number) => message("K", Buffer.concat([int32(pid), int32(secret)]));
export const negotiateProtocolVersion = (minor: number, unsupported: string[]) =>
  message("v", Buffer.concat([int32(minor), int32(unsupported.length), ...unsupported.map(cstr)]));

/**
 * A StartupMessage with exactly these parameters, in this order. Not pg-protocol's
 * `serialize.startup`: it appends `client_encoding=UTF8` after the caller's
 * parameters, which would override the client's own choice.
 */
export function startupMessage(params: Iterable<readonly [string, string]>): Buffer {
  const parts = [int32(0), int32(PROTOCOL_3_0)];
  for (const [k, v] of params) parts.push(cstr(k), cstr(v));
  parts.push(Buffer.from([0]));
  const packet = Buffer.concat(parts);
  packet.writeInt32BE(packet.length, 0);
  return packet;
}

export interface ErrorFields {
  readonly severity: "FATAL" | "ERROR";
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

function fields(severity: string, e: Omit<ErrorFields, "severity">): Buffer {
  const parts = [Buffer.from("S"), cstr(severity), Buffer.from("V"), cstr(severity), Buffer.from("C"), cstr(e.code), Buffer.from("M"), cstr(e.message)];
  if (e.detail) parts.push(Buffer.from("D"), cstr(e.detail));
  if (e.hint) parts.push(Buffer.from("H"), cstr(e.hint));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export function errorResponse(e: ErrorFields): Buffer {
  return message("E", fields(e.severity, e));
}

/** A NoticeResponse (severity WARNING): clients show it and carry on. */
export function noticeResponse(e: Omit<ErrorFields, "severity">): Buffer {
  return message("N", fields("WARNING", e));
}

/** A start-up packet: StartupMessage, SSLRequest, GSSENCRequest or CancelRequest. */
export type StartupPacket =
  | { kind: "ssl" }
  | { kind: "gssenc" }
  | { kind: "cancel"; pid: number; secret: Buffer }
  | { kind: "startup"; major: number; minor: number; params: Map<string, string> };

export function parseStartupPacket(body: Buffer): StartupPacket {
  if (body.length < 4) throw new ProtocolError("start-up packet too short");
  const code = body.readInt32BE(0);
  if (code === SSL_REQUEST) return { kind: "ssl" };
  if (code === GSSENC_REQUEST) return { kind: "gssenc" };
  if (code === CANCEL_REQUEST) {
    if (body.length < 12) throw new ProtocolError("cancel request too short");
    return { kind: "cancel", pid: body.readInt32BE(4), secret: Buffer.from(body.subarray(8)) };
  }
  const major = code >> 16;
  const minor = code & 0xffff;
  if (major !== 3) throw new ProtocolError(`unsupported frontend protocol ${major}.${minor}: server supports 3.0`);
  const params = new Map<string, string>();
  const fields = body.subarray(4).toString("utf8").split("\0");
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const k = fields[i] as string;
    if (k === "") break;
    params.set(k, fields[i + 1] as string);
  }
  return { kind: "startup", major, minor, params };
}

/**
 * The client broke the protocol. `reply: false` for what Postgres only logs and
 * answers by closing the connection (a start-up packet of impossible length, such
 * as a Terminate sent before any start-up packet; end of file during start-up).
 */
export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly reply = true,
  ) {
    super(message);
  }
}

/**
 * Reads length-prefixed messages from a client or backend stream during start-up (before the
 * proxy switches to piping). Whatever it read past the last message is handed
 * back by `rest()` so no byte is lost.
 */
export class MessageReader {
  #buffer: Buffer = Buffer.alloc(0);
  #waiting: (() => void) | undefined;
  #ended = false;
  #error: Error | undefined;
  readonly #socket: Duplex;
  readonly #onData = (d: Buffer) => {
    this.#buffer = this.#buffer.length === 0 ? d : Buffer.concat([this.#buffer, d]);
    if (this.#buffer.length > MAX_STARTUP_PACKET * 4) this.#fail(new ProtocolError("too much data during start-up"));
    this.#wake();
  };
  readonly #onEnd = () => {
    this.#ended = true;
    this.#wake();
  };
  readonly #onError = (err: Error) => this.#fail(err);

  constructor(socket: Duplex) {
    this.#socket = socket;
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("close", this.#onEnd);
    socket.on("error", this.#onError);
  }

  #fail(err: Error): void {
    this.#error ??= err;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.();
  }

  async #need(n: number): Promise<void> {
    while (this.#buffer.length < n) {
      if (this.#error) throw this.#error;
      if (this.#ended) throw new ProtocolError("connection closed during start-up", false);
      await new Promise<void>((resolve) => (this.#waiting = resolve));
    }
  }

  /** Peek the first byte (to tell a direct TLS ClientHello from a start-up packet). */
  async peekByte(): Promise<number> {
    await this.#need(1);
    return this.#buffer[0] as number;
  }

  /** A start-up packet: int32 length (including itself), then the body. */
  async readStartup(): Promise<Buffer> {
    await this.#need(4);
    const len = this.#buffer.readInt32BE(0);
    if (len < 8 || len > MAX_STARTUP_PACKET) throw new ProtocolError(`invalid start-up packet length ${len}`, false);
    await this.#need(len);
    const body = this.#buffer.subarray(4, len);
    this.#buffer = this.#buffer.subarray(len);
    return Buffer.from(body);
  }

  /** A typed message: byte type, int32 length, body. */
  async readMessage(maxLength = MAX_STARTUP_PACKET): Promise<{ type: string; body: Buffer }> {
    await this.#need(5);
    const type = String.fromCharCode(this.#buffer[0] as number);
    const len = this.#buffer.readInt32BE(1);
    if (len < 4 || len > maxLength) throw new ProtocolError(`invalid message length ${len}`);
    await this.#need(len + 1);
    const body = Buffer.from(this.#buffer.subarray(5, len + 1));
    this.#buffer = this.#buffer.subarray(len + 1);
    return { type, body };
  }

  /** Stop reading; return bytes received but not consumed. */
  detach(): Buffer {
    this.#socket.off("data", this.#onData);
    this.#socket.off("end", this.#onEnd);
    this.#socket.off("close", this.#onEnd);
    this.#socket.off("error", this.#onError);
    const rest = this.#buffer;
    this.#buffer = Buffer.alloc(0);
    return rest;
  }
}

/** A start-up failure the client is told about (FATAL ErrorResponse), then the connection closes. */
export class ClientError extends Error {
  constructor(readonly fields: ErrorFields) {
    super(fields.message);
  }
}
