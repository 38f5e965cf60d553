import net from "node:net";
import type { RunningServer, ServerConfig, ServerOptions } from "../../src/index.js";
import { startTestServer } from "./test-server.js";

/** One database as a tenant holds it: what `ccp db create` hands out. */
export interface Tenant {
  readonly id: string;
  readonly name: string;
  readonly token: string;
  readonly password: string;
  readonly url: string;
}

export interface SecurityServer {
  readonly server: RunningServer;
  readonly tenants: Tenant[];
  readonly adminKey: string;
  close(): Promise<void>;
}

/**
 * A test ccpd (support/test-server.ts) with one database per name, for one
 * security test file. `tweak` may adjust the resolved config before it starts.
 */
export async function startSecurityServer(
  label: string,
  names: string[],
  options: ServerOptions = {},
  tweak: (config: ServerConfig) => ServerConfig = (c) => c,
): Promise<SecurityServer> {
  const t = await startTestServer(`sec-${label}`, options, tweak);
  try {
    const tenants: Tenant[] = [];
    for (const name of names) {
      const c = await t.server.databases.create(name);
      tenants.push({ id: c.database.id, name, token: c.token, password: c.password, url: c.database_url });
    }
    return { server: t.server, tenants, adminKey: t.adminKey, close: () => t.dispose() };
  } catch (err) {
    await t.dispose();
    throw err;
  }
}

/** mulberry32: small, fast, seedable; the same seed gives the same cases. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of a randomised test: `CCP_SECURITY_SEED` when set (to replay a failure), else a fresh one. */
export function seedFromEnv(): number {
  const raw = process.env["CCP_SECURITY_SEED"];
  if (raw !== undefined && raw !== "") {
    const n = Number(raw);
    if (!Number.isInteger(n)) throw new Error(`CCP_SECURITY_SEED must be an integer, got "${raw}"`);
    return n >>> 0;
  }
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}

export interface RawExchange {
  /** Everything the server sent. */
  readonly data: Buffer;
  /** The server closed (or reset) the connection before `waitMs`. */
  readonly closed: boolean;
  /** HTTP status of the first response, when one arrived. */
  readonly status: number | undefined;
}

/**
 * Write `payload` to host:port and collect what comes back until the server
 * closes, or `waitMs` passes (then `closed` is false and the socket is destroyed).
 * `endAfterWrite` half-closes our side, for requests that are complete.
 */
export function rawExchange(port: number, payload: Buffer | string, options: { waitMs?: number; endAfterWrite?: boolean; host?: string } = {}): Promise<RawExchange> {
  const waitMs = options.waitMs ?? 10_000;
  return new Promise((resolve) => {
    const s = net.connect(port, options.host ?? "127.0.0.1");
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const data = Buffer.concat(chunks);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data.subarray(0, 32).toString("latin1"));
      resolve({ data, closed, status: m ? Number(m[1]) : undefined });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("error", () => finish(true));
    s.on("close", () => finish(true));
    s.on("connect", () => {
      s.write(payload);
      if (options.endAfterWrite) s.end();
    });
  });
}

/** Split a raw HTTP/1.1 response into status and body (Content-Length or chunked). */
export function parseHttpResponse(data: Buffer): { status: number; headers: Record<string, string>; body: string } | undefined {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const head = data.subarray(0, end).toString("latin1").split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? "");
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = data.subarray(end + 4);
  if (headers["transfer-encoding"] === "chunked") {
    const parts: Buffer[] = [];
    let rest = body;
    for (;;) {
      const nl = rest.indexOf("\r\n");
      if (nl < 0) break;
      const size = parseInt(rest.subarray(0, nl).toString("latin1"), 16);
      if (!size) break;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else if (headers["content-length"] !== undefined) {
    body = body.subarray(0, Number(headers["content-length"]));
  }
  return { status: Number(m[1]), headers, body: body.toString("utf8") };
}

/** Poll `check` until it is true or `timeoutMs` passes; returns its last answer. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
