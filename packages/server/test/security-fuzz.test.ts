import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { eventually, parseHttpResponse, prng, rawExchange, seedFromEnv, startSecurityServer, type SecurityServer, type Tenant } from "./support/security.js";
import { connectPg } from "./wire-clients.js";

/**
 * Fuzz: generated request bodies and headers against every SQL endpoint and
 * the admin API, in-process (Fastify's inject) and over real sockets for what
 * only framing can break; then generated start-ups against the wire endpoint.
 * The promise under test: no input ever gets a 5xx, no request hangs, every
 * malformed wire start-up gets a clean ErrorResponse and close (or a close),
 * and ccpd serves normal clients afterwards.
 *
 * The cases come from a seeded PRNG. The seed is printed; replay a failure with
 * CCP_SECURITY_SEED=<seed>.
 */

const SEED = seedFromEnv();
const INJECT_CASES = 5_200;
const SOCKET_CASES = 320;
const WIRE_CASES = 400;
/** No single request may take longer than this: a slower one counts as a hang. */
const HANG_MS = 15_000;
const MAX_BODY = 256 * 1024;

type Rand = () => number;

interface HttpCase {
  readonly label: string;
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly payload?: Buffer | string;
}

describe(`security: fuzzing ccpd's HTTP and wire endpoints (seed ${SEED}; replay with CCP_SECURITY_SEED=${SEED})`, () => {
  let sec: SecurityServer;
  let tenant: Tenant;
  let port = 0;
  const counts = { inject: 0, socket: 0, wire: 0, fiveHundreds: 0, hangs: 0 };

  before(async () => {
    sec = await startSecurityServer("fuzz", ["fuzz-a"], { statementTimeoutMs: 2_000 }, (c) => ({
      ...c,
      wireStartupTimeoutMs: 1_500,
      // A request that stalls is closed after 2 s (the defaults are 10 s), so framing cases finish quickly.
      http: { ...c.http, headersTimeoutMs: 2_000, requestTimeoutMs: 2_000, keepAliveTimeoutMs: 1_000 },
      gateway: { ...c.gateway, maxBodyBytes: MAX_BODY },
    }));
    tenant = sec.tenants[0] as Tenant;
    port = Number(new URL(sec.server.url).port);
  });
  after(async () => {
    await sec?.close();
    console.log(`fuzz (seed ${SEED}): ${counts.inject} in-process HTTP cases, ${counts.socket} real-socket HTTP cases, ${counts.wire} wire start-up cases; ${counts.fiveHundreds} answers >= 500, ${counts.hangs} hangs or unclosed connections`);
  });

  // ---------- generators ----------

  const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const int = (r: Rand, n: number) => Math.floor(r() * n);
  const randomString = (r: Rand, max: number) => Array.from({ length: int(r, max) }, () => String.fromCharCode(int(r, 0x3000))).join("");
  const randomBytes = (r: Rand, max: number) => Buffer.from(Array.from({ length: 1 + int(r, max) }, () => int(r, 256)));

  function nested(r: Rand, depth: number): string {
    const open = r() < 0.5 ? "[" : '{"a":';
    const close = open === "[" ? "]" : "}";
    return open.repeat(depth) + (r() < 0.5 ? "1" : '"x"') + close.repeat(depth);
  }

  const SQLS = ["select 1", "select $1::text", "select $1::int + $2::int", "select pg_sleep(0)", "", " ", "select", "\u0000", "select '\u0000'", "select 1; select 2", "begin", "commit", "select repeat('x', 1000)"];
  const HUGE_NUMBERS = ["1e400", "-1e400", "123456789012345678901234567890123456789", "0.1e-400", "-0", "1E+308", "9007199254740993", "0x10", "NaN", "Infinity", "01", "1.", ".5", "+1"];
  const WEIRD_VALUES = ['null', 'true', '"x"', "[]", "{}", '"\\u0000"', '"\\ud800"', '"\\udfff\\ud800"', '{"a":[1,{"b":null}]}', '"' + "y".repeat(5000) + '"', "[[1,2],[3]]", '[null,[null]]'];
  const value = (r: Rand): string => (r() < 0.4 ? pick(r, HUGE_NUMBERS) : r() < 0.7 ? pick(r, WEIRD_VALUES) : JSON.stringify(randomString(r, 40)));

  /** A JSON body for a statement endpoint, some fields broken. */
  function statementBody(r: Rand): string {
    const fields: string[] = [];
    const sqlKind = r();
    if (sqlKind < 0.55) fields.push(`"sql":${JSON.stringify(pick(r, SQLS))}`);
    else if (sqlKind < 0.85) fields.push(`"sql":${value(r)}`);
    if (r() < 0.6) {
      const p = r();
      if (p < 0.35) fields.push(`"params":[${Array.from({ length: int(r, 4) }, () => value(r)).join(",")}]`);
      else if (p < 0.55) fields.push(`"params":${nested(r, pick(r, [10, 63, 64, 65, 100, 1_000, 10_000, 50_000]))}`);
      else if (p < 0.7) fields.push(`"params":[${nested(r, pick(r, [64, 65, 200, 10_000]))}]`);
      else fields.push(`"params":${value(r)}`);
    }
    if (r() < 0.15) fields.push(`"database":${r() < 0.5 ? JSON.stringify(pick(r, ["default", "postgres", "template0", "nope", "x".repeat(64), "a\u0000b", ""])) : value(r)}`);
    if (r() < 0.1) fields.push(`${JSON.stringify(randomString(r, 8))}:${value(r)}`);
    if (r() < 0.05) fields.push(fields[0] ?? '"sql":"select 1"'); // duplicate key
    return `{${fields.join(",")}}`;
  }

  function transactionBody(r: Rand): string {
    const k = r();
    if (k < 0.2) return `{"statements":${value(r)}}`;
    if (k < 0.3) return `{"statements":[]}`;
    const statements = Array.from({ length: 1 + int(r, 3) }, () => (r() < 0.8 ? statementBody(r) : value(r)));
    const extra = r() < 0.3 ? `,"isolation_level":${r() < 0.5 ? JSON.stringify(pick(r, ["serializable", "SERIALIZABLE", "read_committed", "snapshot", ""])) : value(r)}` : "";
    const ro = r() < 0.2 ? `,"read_only":${pick(r, ["true", "1", '"true"', "null"])}` : "";
    const def = r() < 0.1 ? `,"deferrable":${pick(r, ["false", "0", '"yes"'])}` : "";
    return `{"statements":[${statements.join(",")}]${extra}${ro}${def}}`;
  }

  function neonBody(r: Rand): string {
    const k = r();
    const one = () => {
      const q = r() < 0.6 ? JSON.stringify(pick(r, SQLS)) : value(r);
      const params = r() < 0.5 ? `,"params":${r() < 0.5 ? `[${value(r)}]` : r() < 0.5 ? nested(r, pick(r, [64, 65, 10_000])) : value(r)}` : "";
      const arrayMode = r() < 0.2 ? `,"arrayMode":${pick(r, ["true", '"true"', "1"])}` : "";
      return `{"query":${q}${params}${arrayMode}}`;
    };
    if (k < 0.6) return one();
    if (k < 0.85) return `{"queries":[${Array.from({ length: int(r, 3) }, one).join(",")}]}`;
    return `{"queries":${value(r)}}`;
  }

  /** Break a body in one of the ways a client can. */
  function mangle(r: Rand, body: string): Buffer | string {
    const k = r();
    if (k < 0.45) return body;
    if (k < 0.55) return body.slice(0, int(r, body.length)); // truncated JSON
    if (k < 0.6) return body + pick(r, ["}", "]", ",", " garbage", "\u0000", "{}"]);
    if (k < 0.67) {
      const b = Buffer.from(body);
      const bad = pick(r, [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0x00]]);
      const at = int(r, b.length + 1);
      return Buffer.concat([b.subarray(0, at), Buffer.from(bad), b.subarray(at)]); // invalid UTF-8 / NUL
    }
    if (k < 0.72) return randomBytes(r, 200);
    if (k < 0.75) return "\ufeff" + body; // BOM
    if (k < 0.78) return "";
    if (k < 0.8) return body.replace(/"/g, "'");
    if (k < 0.82) return `[${body}]`;
    if (k < 0.84) return JSON.stringify(body); // a JSON string, not an object
    if (k < 0.86) return `{"sql":"${"x".repeat(MAX_BODY + 10)}"}`; // over the body limit
    if (k < 0.9) return body.replace(/:/, pick(r, [": /* c */", "::", ":-", ":\u00a0"]));
    return body;
  }

  const CONTENT_TYPES = [
    "application/json", "application/json", "application/json", "application/json; charset=utf-8", "application/json; charset=latin1",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/octet-stream", "", "application/json\u0007",
    "APPLICATION/JSON", "application/vnd.api+json", "text/json", "application/json;", `application/json; ${"p=".repeat(300)}`,
  ];

  function authHeader(r: Rand, good: string): string | undefined {
    const k = r();
    if (k < 0.6) return `Bearer ${good}`;
    if (k < 0.65) return undefined;
    return pick(r, [
      "Bearer", "Bearer ", `bearer ${good}`, `Bearer  ${good}  `, `Basic ${Buffer.from(`u:${good}`).toString("base64")}`, `Bearer ${good}x`,
      `Bearer ${"a".repeat(8_000)}`, "Bearer \u00e9\u00e9", `Bearer ${good} ${good}`, `Bearer ${sec.adminKey}`, "Bearer null", "Bearer %00",
    ]);
  }

  function neonConnection(r: Rand): string | undefined {
    const good = `postgresql://clusterbase:${tenant.token}@${tenant.id}.localhost/default`;
    const k = r();
    if (k < 0.55) return good;
    if (k < 0.6) return undefined;
    return pick(r, [
      "", "not a url", "postgresql://", `postgresql://clusterbase:%zz@${tenant.id}.localhost/default`, `http://clusterbase:${tenant.token}@${tenant.id}.localhost/default`,
      `postgresql://clusterbase:${tenant.token}@${tenant.id}.localhost/%00`, `postgresql://clusterbase:${tenant.token}@${tenant.id}.localhost/${"d".repeat(100)}`,
      `postgresql://other:${tenant.token}@${tenant.id}.localhost/default`, `postgresql://clusterbase:${tenant.token}@[::1]/default`,
      `postgresql://clusterbase:${tenant.token}@${tenant.id}.localhost:99999/default`, `postgresql://clusterbase:${tenant.token}@xn--${tenant.id}.localhost/default`,
      `postgresql://clusterbase:${tenant.token}@${tenant.id}.localhost/default?options=-c%20statement_timeout%3D0`, `postgresql://%E0%A4%A:${tenant.token}@${tenant.id}.localhost/`,
      good.replace("clusterbase", "cluster%00base"), `postgresql://clusterbase:${tenant.token}@${tenant.id}.localhost/postgres`,
    ]);
  }

  const BAD_REFS = ["db-000000000000", "DB-000000000000", "nope", "..", "%2e%2e", "a".repeat(300), "%00", "db-", "%E2%9C%93", "db-zzzzzzzzzzzz", "x%2Fy", "%ff"];

  function adminCase(r: Rand): HttpCase {
    const ref = pick(r, BAD_REFS);
    const route = pick(r, [
      ["GET", "/v1/databases"], ["POST", "/v1/databases"], ["GET", `/v1/databases/${ref}`], ["DELETE", `/v1/databases/${ref}`],
      ["GET", `/v1/databases/${ref}?show_secrets=${pick(r, ["true", "1", "yes", "", "%00"])}`], ["GET", `/v1/databases/${ref}/status`],
      ["POST", `/v1/databases/${ref}/password`], ["POST", `/v1/databases/${ref}/token`], ["POST", `/v1/databases/${ref}/restore`],
      ["GET", `/v1/databases/${ref}/backups`], ["POST", `/v1/databases/${ref}/backups`], ["DELETE", `/v1/databases/${ref}/backups/bkp-00000000`],
      ["POST", `/v1/databases/${ref}/backups/${pick(r, ["bkp-00000000", "x", "%00"])}/restore`], ["POST", `/v1/databases/${ref}/backups/bkp-00000000/verify`],
      ["PUT", "/v1/databases"], ["PATCH", `/v1/databases/${ref}`], ["GET", "/v1/openapi.json"], ["GET", "/v1/health"],
      // The real database, read-only routes only (the fuzz must not destroy or re-key what it tests).
      ["GET", `/v1/databases/${pick(r, [tenant.id, tenant.name, tenant.id.toUpperCase()])}?${pick(r, ["show_secrets=true", "show_secrets=TRUE", "show_secrets=2", "show_secrets", "show_secrets=true&show_secrets=false", "x=1", "%zz", "show_secrets=%00"])}`],
      ["GET", `/v1/databases/${pick(r, [tenant.id, tenant.name])}/status`], ["GET", `/v1/databases/${tenant.name}/backups`],
    ] as const);
    const bodies = [
      () => `{"name":${value(r)}}`,
      () => `{"name":${JSON.stringify(pick(r, ["1abc", "ab", "A-db", "db-0123456789ab", "DB-0123456789AB", "x".repeat(40), "a b", "ä-db", "a\u0000b"]))}}`,
      () => `{"name":"fz-${int(r, 1000)}!","owner":${value(r)},"password":${value(r)}}`,
      () => `{"password":${value(r)}}`,
      () => `{"time":${value(r)},"name":${value(r)}}`,
      () => `{"time":"2020-01-01T00:00:00Z","name":"fz!"}`,
      () => value(r),
    ];
    let payload: Buffer | string | undefined = route[0] === "GET" || route[0] === "DELETE" ? (r() < 0.1 ? "{}" : undefined) : mangle(r, pick(r, bodies)());
    if (typeof payload === "string" && wouldCreate(payload)) payload = payload.replace(/"name":\s*"/, '"name":"!'); // never create databases by chance
    const auth = r() < 0.7 ? `Bearer ${sec.adminKey}` : authHeader(r, tenant.token);
    return {
      label: `admin ${route[0]} ${route[1]}`,
      method: route[0],
      url: route[1],
      headers: { ...(auth === undefined ? {} : { authorization: auth }), ...(payload === undefined ? {} : { "content-type": pick(r, CONTENT_TYPES) }) },
      ...(payload === undefined ? {} : { payload }),
    };
  }

  function wouldCreate(payload: string): boolean {
    try {
      const v = JSON.parse(payload.replace(/^\ufeff/, "")) as { name?: unknown }; // Fastify's parser skips a BOM too
      return typeof v === "object" && v !== null && typeof v.name === "string" && /^[a-z][a-z0-9_-]{2,31}$/.test(v.name);
    } catch {
      return false;
    }
  }

  function sqlCase(r: Rand): HttpCase {
    const k = r();
    if (k < 0.2) {
      const headers: Record<string, string> = { "content-type": pick(r, CONTENT_TYPES) };
      const conn = neonConnection(r);
      if (conn !== undefined) headers["neon-connection-string"] = conn;
      if (r() < 0.2) headers["authorization"] = authHeader(r, tenant.token) ?? "";
      if (r() < 0.15) headers["neon-batch-isolation-level"] = pick(r, ["Serializable", "serializable", "", "ReadCommitted", "x".repeat(200)]);
      if (r() < 0.1) headers["neon-raw-text-output"] = pick(r, ["true", "false", "1"]);
      if (r() < 0.1) headers["neon-array-mode"] = pick(r, ["true", "TRUE"]);
      if (r() < 0.05) headers["neon-batch-read-only"] = "true";
      return { label: "neon /sql", method: "POST", url: "/sql", headers, payload: mangle(r, neonBody(r)) };
    }
    const endpoint = pick(r, ["query", "execute", "transaction"] as const);
    const byHost = r() < 0.3;
    const url = byHost ? `/${endpoint}` : `/v1/databases/${r() < 0.95 ? tenant.id : pick(r, BAD_REFS)}/${endpoint}`;
    const headers: Record<string, string> = { "content-type": pick(r, CONTENT_TYPES) };
    const auth = authHeader(r, tenant.token);
    if (auth !== undefined) headers["authorization"] = auth;
    if (byHost) headers["host"] = pick(r, [`${tenant.id}.localhost`, `${tenant.id}.localhost`, `${tenant.id.toUpperCase()}.LOCALHOST`, `${tenant.id}.localhost.`, `${tenant.id}.localhost:0`, "", "localhost", `${tenant.id}.evil`, `[${tenant.id}]`, `${tenant.id}.localhost:99999999999`]);
    if (r() < 0.03) headers["x-" + randomString(r, 5).replace(/[^a-z]/g, "a")] = "y";
    const body = endpoint === "transaction" ? transactionBody(r) : statementBody(r);
    return { label: `${endpoint} by ${byHost ? "host" : "path"}`, method: pick(r, ["POST", "POST", "POST", "POST", "POST", "POST", "POST", "POST", "GET", "PUT"]), url, headers, payload: mangle(r, body) };
  }

  /** A SQL body whose `sql`/`query` is present but not a string must never run (issue 13: no coercion). */
  function wronglyTyped(c: HttpCase): boolean {
    if (c.payload === undefined || !/\/(query|execute|transaction|sql)$/.test(c.url)) return false;
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(c.payload).toString("utf8"));
    } catch {
      return false;
    }
    if (typeof body !== "object" || body === null) return false;
    const field = c.url.endsWith("/sql") ? "query" : "sql";
    const statements: unknown[] = Array.isArray((body as { statements?: unknown }).statements)
      ? ((body as { statements: unknown[] }).statements)
      : Array.isArray((body as { queries?: unknown }).queries)
        ? (body as { queries: unknown[] }).queries
        : [body];
    return statements.some((st) => typeof st === "object" && st !== null && field in st && typeof (st as Record<string, unknown>)[field] !== "string");
  }

  const failures: string[] = [];
  const note = (c: HttpCase, what: string) => {
    if (failures.length < 20) failures.push(`${c.label} ${c.method} ${c.url} ${JSON.stringify(c.headers).slice(0, 200)} body=${JSON.stringify(String(c.payload ?? "").slice(0, 200))}: ${what}`);
  };
  const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T | "hang"> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => resolve("hang"), ms);
      p.then((v) => (clearTimeout(t), resolve(v)), (e: unknown) => (clearTimeout(t), reject(e)));
    });

  it(`${INJECT_CASES} generated requests in-process: never a 5xx, never a hang, always a JSON error body`, async () => {
    const r = prng(SEED);
    let statuses = new Map<number, number>();
    for (let i = 0; i < INJECT_CASES; i++) {
      const c = r() < 0.78 ? sqlCase(r) : adminCase(r);
      const res = await withTimeout(
        sec.server.app.inject({ method: c.method as "POST", url: c.url, headers: c.headers, ...(c.payload === undefined ? {} : { payload: c.payload }) }),
        HANG_MS,
      );
      counts.inject++;
      if (res === "hang") {
        counts.hangs++;
        note(c, "no answer");
        continue;
      }
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      if (res.statusCode < 300 && wronglyTyped(c)) note(c, `${res.statusCode}: a field of the wrong type was accepted: ${res.body.slice(0, 100)}`);
      if (res.statusCode >= 500) {
        counts.fiveHundreds++;
        note(c, `${res.statusCode} ${res.body.slice(0, 300)}`);
      }
      else if (res.statusCode >= 400) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(res.body);
        } catch {
          note(c, `${res.statusCode} with a body that is not JSON: ${res.body.slice(0, 100)}`);
          continue;
        }
        const p = parsed as { error?: { code?: unknown; message?: unknown }; code?: unknown; message?: unknown };
        const code = p.error?.code ?? p.code;
        const message = p.error?.message ?? p.message;
        if (typeof message !== "string" || message === "") note(c, `${res.statusCode} without a message: ${res.body.slice(0, 100)}`);
        if (typeof code !== "string" || code === "") note(c, `${res.statusCode} without a code: ${res.body.slice(0, 100)}`);
      }
    }
    console.log(`fuzz (seed ${SEED}) in-process statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`);
    statuses = new Map();
    assert.deepEqual(failures, [], `seed ${SEED}`);
  });

  // ---------- real sockets: framing ----------

  function socketCase(r: Rand): { label: string; bytes: Buffer } {
    const good = `{"sql":"select 1"}`;
    const path = pick(r, [`/v1/databases/${tenant.id}/query`, "/sql", "/v1/databases", `/v1/databases/${tenant.id}/transaction`]);
    const auth = path === "/v1/databases" ? `Bearer ${sec.adminKey}` : `Bearer ${tenant.token}`;
    const neonHeader = `neon-connection-string: postgresql://clusterbase:${tenant.token}@${tenant.id}.localhost/default\r\n`;
    const head = (extra: string) => `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth}\r\n${path === "/sql" ? neonHeader : ""}Content-Type: application/json\r\nConnection: close\r\n${extra}\r\n`;
    const body = path === "/sql" ? `{"query":"select 1"}` : path === "/v1/databases" ? `{"name":"!x"}` : path.endsWith("transaction") ? `{"statements":[${good}]}` : good;
    const chunked = (parts: string[]) => parts.map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join("") + "0\r\n\r\n";
    const split = (s: string) => {
      const out: string[] = [];
      for (let i = 0; i < s.length; ) {
        const n = 1 + int(r, 8);
        out.push(s.slice(i, i + n));
        i += n;
      }
      return out;
    };
    const cases: [string, () => string | Buffer][] = [
      ["chunked, valid", () => head("Transfer-Encoding: chunked\r\n") + chunked(split(body))],
      ["chunked, bad size", () => head("Transfer-Encoding: chunked\r\n") + `zz\r\n${body}\r\n0\r\n\r\n`],
      ["chunked, negative size", () => head("Transfer-Encoding: chunked\r\n") + `-5\r\n${body}\r\n0\r\n\r\n`],
      ["chunked, size overflow then EOF", () => head("Transfer-Encoding: chunked\r\n") + `ffffffffffffffffff\r\n${body}`],
      ["chunked, missing CRLF", () => head("Transfer-Encoding: chunked\r\n") + `${Buffer.byteLength(body).toString(16)}\r\n${body}0\r\n\r\n`],
      ["chunked, extension and trailer", () => head("Transfer-Encoding: chunked\r\n") + `${Buffer.byteLength(body).toString(16)};ext=1\r\n${body}\r\n0\r\nX-Trailer: 1\r\n\r\n`],
      ["chunked, over the body limit", () => head("Transfer-Encoding: chunked\r\n") + chunked(Array.from({ length: 9 }, () => "x".repeat(MAX_BODY / 8)))],
      ["Content-Length and Transfer-Encoding", () => head(`Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n`) + chunked([body])],
      ["two Content-Lengths", () => head(`Content-Length: ${body.length}\r\nContent-Length: ${body.length + 1}\r\n`) + body],
      ["Content-Length larger than the body, then EOF", () => head(`Content-Length: ${body.length + 50}\r\n`) + body],
      ["Content-Length larger than the body (stalls)", () => head(`Content-Length: ${body.length + 50}\r\n`) + body],
      ["keep-alive request, then nothing", () => head(`Content-Length: ${body.length}\r\n`).replace("Connection: close\r\n", "") + body],
      ["Content-Length smaller than the body", () => head(`Content-Length: ${body.length - 3}\r\n`) + body],
      ["Content-Length negative", () => head("Content-Length: -1\r\n") + body],
      ["Content-Length huge", () => head("Content-Length: 99999999999999999999\r\n") + body],
      ["over the body limit", () => head(`Content-Length: ${MAX_BODY + 100}\r\n`) + `{"sql":"${"x".repeat(MAX_BODY + 90)}"}`],
      ["header too large", () => head(`X-Big: ${"b".repeat(20_000)}\r\nContent-Length: ${body.length}\r\n`) + body],
      ["many headers", () => head(Array.from({ length: 3_000 }, (_, i) => `X-H${i}: v\r\n`).join("") + `Content-Length: ${body.length}\r\n`) + body],
      ["invalid header byte", () => head(`X-Bad: a\u0000b\r\nContent-Length: ${body.length}\r\n`) + body],
      ["header without colon", () => head(`NoColon\r\nContent-Length: ${body.length}\r\n`) + body],
      ["obsolete line folding", () => head(`X-Fold: a\r\n b\r\nContent-Length: ${body.length}\r\n`) + body],
      ["bare LF line endings", () => head(`Content-Length: ${body.length}\r\n`).replace(/\r\n/g, "\n") + body],
      ["garbage request line", () => `${randomString(r, 50)}\r\n\r\n`],
      ["random bytes", () => randomBytes(r, 400)],
      ["HTTP/2 preface", () => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"],
      ["HTTP/1.0 without Host", () => `POST ${path} HTTP/1.0\r\nAuthorization: ${auth}\r\nContent-Length: ${body.length}\r\n\r\n${body}`],
      ["HTTP/9.9", () => `POST ${path} HTTP/9.9\r\nHost: x\r\n\r\n`],
      ["absolute-form target", () => `POST http://${tenant.id}.localhost${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`],
      ["very long URL", () => `GET /v1/databases/${"a".repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
      ["unknown method", () => `BREW ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
      ["lower-case method", () => `post ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
      ["pipelined requests", () => (head(`Content-Length: ${body.length}\r\n`) + body).replace("Connection: close\r\n", "").repeat(3) + head(`Content-Length: ${body.length}\r\n`) + body],
      ["Expect: 100-continue", () => head(`Expect: 100-continue\r\nContent-Length: ${body.length}\r\n`) + body],
      ["invalid UTF-8 body", () => Buffer.concat([Buffer.from(head(`Content-Length: ${body.length + 2}\r\n`)), Buffer.from([0xff, 0xfe]), Buffer.from(body)])],
      ["NUL in the URL", () => `POST /v1/databases/${tenant.id}\u0000/query HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
      ["Host with CR", () => `POST /query HTTP/1.1\r\nHost: ${tenant.id}.localhost\rx\r\nConnection: close\r\n\r\n`],
    ];
    const [label, make] = pick(r, cases);
    const made = make();
    return { label, bytes: typeof made === "string" ? Buffer.from(made, "utf8") : made };
  }

  it(`${SOCKET_CASES} malformed or unusual HTTP framings over real sockets: a 4xx (or a close), never a 5xx or a hang`, async () => {
    const r = prng(SEED ^ 0x5eed);
    const socketFailures: string[] = [];
    const batch = 160;
    const statuses = new Map<number | string, number>();
    for (let i = 0; i < SOCKET_CASES; i += batch) {
      const cases = Array.from({ length: Math.min(batch, SOCKET_CASES - i) }, () => socketCase(r));
      const results = await Promise.all(cases.map((c) => rawExchange(port, c.bytes, { waitMs: HANG_MS, endAfterWrite: c.label.endsWith("EOF") })));
      results.forEach((res, j) => {
        const c = cases[j] as { label: string; bytes: Buffer };
        counts.socket++;
        // Every response on the connection (pipelining gives several).
        const found = [...res.data.toString("latin1").matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
        for (const s of found.length ? found : ["closed"]) statuses.set(s, (statuses.get(s) ?? 0) + 1);
        if (!res.closed) {
          counts.hangs++;
          socketFailures.push(`${c.label}: still open after ${HANG_MS} ms`);
        }
        if (found.some((s) => s >= 500)) counts.fiveHundreds++;
        if (found.some((s) => s >= 500)) socketFailures.push(`${c.label}: ${res.data.toString("utf8").slice(0, 300)}`);
      });
    }
    console.log(`fuzz (seed ${SEED}) real-socket statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.deepEqual(socketFailures.slice(0, 20), [], `seed ${SEED}`);
  });

  it("ccpd still serves /query, /sql and the admin API normally afterwards", async () => {
    const q = await fetch(`${sec.server.url}/v1/databases/${tenant.id}/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${tenant.token}`, "content-type": "application/json" },
      body: JSON.stringify({ sql: "select $1::int + 1 as n", params: [41] }),
    });
    assert.deepEqual(((await q.json()) as { rows: unknown }).rows, [{ n: 42 }]);
    const n = await fetch(`${sec.server.url}/sql`, {
      method: "POST",
      headers: { "neon-connection-string": `postgresql://clusterbase:${tenant.token}@${tenant.id}.localhost/default` },
      body: JSON.stringify({ query: "select 1 as one", params: [] }),
    });
    assert.equal(n.status, 200);
    const list = await fetch(`${sec.server.url}/v1/databases`, { headers: { authorization: `Bearer ${sec.adminKey}` } });
    const names = ((await list.json()) as { databases: { name: string }[] }).databases.map((d) => d.name);
    assert.deepEqual(names, ["fuzz-a"], "the fuzz created or destroyed no database");
    const raw = parseHttpResponse((await rawExchange(port, `GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).data);
    assert.equal(raw?.status, 200);
  });

  // ---------- the wire endpoint's start-up ----------

  const int32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  const packet = (code: number, body: Buffer = Buffer.alloc(0), length?: number) => Buffer.concat([int32(length ?? 8 + body.length), int32(code), body]);
  const startup = (params: Record<string, string>) => packet(196608, Buffer.from(Object.entries(params).map(([k, v]) => `${k}\0${v}\0`).join("") + "\0"));
  const SSL = packet(80877103);
  const GSS = packet(80877104);

  function wireCase(r: Rand): { label: string; bytes: Buffer; ssl: boolean; end: boolean; code: string | undefined } {
    const user = `clusterbase.${tenant.id}`;
    const valid = startup({ user, database: "default" });
    // The third field: the SQLSTATE the endpoint must answer with when the client sent that much
    // and waits (when it half-closes at once, a close without a reply is as clean).
    const cases: [string, () => Buffer, string?][] = [
      // An impossible start-up length is closed without a reply, as Postgres does (it only logs "invalid length of
      // startup packet"): node-postgres sends a Terminate first on connect(); end() and would raise a reply (issue 18).
      ["length 0", () => Buffer.concat([int32(0), randomBytes(r, 20)])],
      ["length 4", () => packet(196608, Buffer.alloc(0), 4)],
      ["length 7", () => packet(196608, Buffer.alloc(0), 7)],
      ["length -1", () => packet(196608, Buffer.alloc(0), 0xffffffff)],
      ["length 2^31", () => packet(196608, Buffer.alloc(0), 0x80000000)],
      ["length 2^31-1", () => packet(196608, Buffer.alloc(0), 0x7fffffff)],
      ["length larger than sent", () => packet(196608, Buffer.from(`user\0${user}\0\0`), 500)],
      ["length 10001", () => Buffer.concat([packet(196608, Buffer.alloc(0), 10_001), randomBytes(r, 100)])],
      ["random garbage", () => randomBytes(r, 300)],
      ["garbage after a valid length", () => Buffer.concat([int32(40), randomBytes(r, 36)])],
      ["protocol 2.0", () => packet(0x00020000, Buffer.from(`user\0${user}\0\0`)), "08P01"],
      ["protocol 4.0", () => packet(0x00040000, Buffer.from(`user\0${user}\0\0`)), "08P01"],
      ["protocol 3.9999 with _pq_ options", () => packet(0x0003270f, Buffer.from(`user\0${user}\0_pq_.x\0y\0\0`))],
      ["a second StartupMessage instead of SASL", () => Buffer.concat([valid, valid]), "08P01"],
      ["SSLRequest then plaintext", () => Buffer.concat([SSL, valid]), "08P01"],
      ["SSLRequest then garbage (after S)", () => SSL],
      ["two SSLRequests", () => Buffer.concat([SSL, SSL]), "08P01"],
      ["GSSENCRequest then garbage", () => Buffer.concat([GSS, randomBytes(r, 50)])],
      ["GSSENCRequest then a valid start-up then EOF", () => Buffer.concat([GSS, valid])],
      ["CancelRequest too short", () => packet(80877102, Buffer.alloc(2)), "08P01"],
      ["CancelRequest with a random key", () => packet(80877102, Buffer.concat([int32(int(r, 2 ** 31)), int32(int(r, 2 ** 31))]))],
      ["start-up without user", () => startup({ database: "default" }), "28000"],
      ["start-up with an empty user", () => startup({ user: "" }), "28000"],
      ["start-up without terminator", () => packet(196608, Buffer.from(`user\0${user}`))],
      ["start-up with invalid UTF-8", () => packet(196608, Buffer.concat([Buffer.from("user\0"), Buffer.from([0xff, 0xfe, 0x00, 0x00])]))],
      ["start-up with many parameters (over the 10000-byte length limit)", () => startup(Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`p${i}`, "v".repeat(20)])))],
      ["replication start-up", () => startup({ user, replication: "database" }), "28000"],
      ["truncated start-up, then EOF", () => valid.subarray(0, 1 + int(r, valid.length - 1))],
      ["valid start-up, then a wrong SASL mechanism", () => Buffer.concat([valid, saslInitial("PLAIN", "x")]), "28000"],
      ["valid start-up, then a SASL message with a bad length field", () => Buffer.concat([valid, Buffer.from("p"), int32(20), Buffer.from("SCRAM-SHA-256\0"), int32(0x7fffffff), Buffer.from("n")])],
      ["valid start-up, then a SASL message without NUL", () => Buffer.concat([valid, Buffer.from("p"), int32(8), Buffer.from("ABCD")]), "28000"],
      ["valid start-up, then garbage", () => Buffer.concat([valid, randomBytes(r, 100)])],
      ["valid start-up, then a message of length 2^31", () => Buffer.concat([valid, Buffer.from("p"), int32(0x80000000)]), "08P01"],
      ["valid start-up, then a query instead of SASL", () => Buffer.concat([valid, Buffer.from("Q"), int32(13), Buffer.from("select 1\0")]), "08P01"],
      ["valid start-up, then a bad client-first-message", () => Buffer.concat([valid, saslInitial("SCRAM-SHA-256", randomString(r, 40))]), "28P01"],
    ];
    const [label, make, code] = pick(r, cases);
    return { label, bytes: make(), ssl: label.includes("SSLRequest"), end: r() < 0.5, code };
  }

  function saslInitial(mechanism: string, data: string): Buffer {
    const d = Buffer.from(data, "utf8");
    const body = Buffer.concat([Buffer.from(`${mechanism}\0`), int32(d.length), d]);
    return Buffer.concat([Buffer.from("p"), int32(body.length + 4), body]);
  }

  /** What the endpoint sent must be whole protocol messages of the start-up kind; an error names a SQLSTATE. */
  function cleanReply(data: Buffer, ssl: boolean): string | undefined {
    let at = 0;
    if (ssl && data[0] === 0x53) {
      // 'S', then TLS: plaintext instead of a ClientHello may get a TLS alert record (0x15), nothing else.
      return data.length === 1 || data[1] === 0x15 ? undefined : `after 'S': ${data.subarray(1, 8).toString("hex")}`;
    }
    if (ssl && data[0] === 0x4e) at = 1;
    while (data[0] === 0x4e && at < data.length && data[at] === 0x4e) at++; // 'N' to GSSENCRequest(s)
    while (at < data.length) {
      if (data.length - at < 5) return `a truncated message at byte ${at}`;
      const type = String.fromCharCode(data[at] as number);
      const len = data.readInt32BE(at + 1);
      if (len < 4 || at + 1 + len > data.length) return `message ${type} with length ${len} at byte ${at}`;
      if (!"REvN".includes(type)) return `unexpected message type ${type}`;
      if (type === "E" && !/C[0-9A-Z]{5}\0/.test(data.subarray(at + 5, at + 1 + len).toString("latin1"))) return "an ErrorResponse without a SQLSTATE";
      at += 1 + len;
    }
    return undefined;
  }

  it("SSLRequest answered 'S', then a plaintext StartupMessage instead of a TLS handshake: closed, with at most a TLS alert, every time", async () => {
    const exchange = () =>
      new Promise<{ data: Buffer; closed: boolean }>((resolve) => {
        const s = net.connect(sec.server.wirePort, "127.0.0.1");
        let data = Buffer.alloc(0);
        let sentPlaintext = false;
        const timer = setTimeout(() => (s.destroy(), resolve({ data, closed: false })), 11_500);
        s.on("error", () => undefined);
        s.on("data", (d: Buffer) => {
          data = Buffer.concat([data, d]);
          if (!sentPlaintext && data[0] === 0x53) {
            sentPlaintext = true;
            s.write(startup({ user: `clusterbase.${tenant.id}`, database: "default" }));
          }
        });
        s.on("close", () => (clearTimeout(timer), resolve({ data, closed: true })));
        s.write(SSL);
      });
    const results = await Promise.all(Array.from({ length: 20 }, exchange));
    for (const r of results) {
      counts.wire++;
      assert.equal(r.closed, true);
      assert.equal(r.data[0], 0x53, "the SSLRequest is answered S");
      assert.ok(r.data.length === 1 || r.data[1] === 0x15, `after S only a TLS alert may come: ${r.data.subarray(1, 9).toString("hex")}`);
    }
  });

  it(`${WIRE_CASES} malformed wire start-ups: each gets a clean ErrorResponse and a close (or just a close), and the endpoint keeps serving`, async () => {
    const r = prng(SEED ^ 0x1e1e);
    const wireFailures: string[] = [];
    const labels = new Map<string, number>();
    const batch = 100;
    for (let i = 0; i < WIRE_CASES; i += batch) {
      const cases = Array.from({ length: Math.min(batch, WIRE_CASES - i) }, () => wireCase(r));
      // Start-up timeout is 1.5 s: anything still open after it plus 10 s is a hang.
      const results = await Promise.all(cases.map((c) => rawExchange(sec.server.wirePort, c.bytes, { waitMs: 11_500, endAfterWrite: c.end })));
      results.forEach((res, j) => {
        const c = cases[j] as ReturnType<typeof wireCase>;
        counts.wire++;
        labels.set(c.label, (labels.get(c.label) ?? 0) + 1);
        if (!res.closed) {
          counts.hangs++;
          wireFailures.push(`${c.label}: not closed`);
        }
        const bad = cleanReply(res.data, c.ssl);
        const sqlstate = /C([0-9A-Z]{5})\0/.exec(res.data.toString("latin1"))?.[1];
        if (!c.end && c.code !== undefined && sqlstate !== c.code) wireFailures.push(`${c.label}: answered ${sqlstate ?? "nothing"}, expected an ErrorResponse ${c.code}`);
        if (bad) wireFailures.push(`${c.label}: ${bad}: ${res.data.toString("latin1").slice(0, 120)}`);
      });
    }
    console.log(`fuzz (seed ${SEED}) wire start-up kinds tried: ${labels.size}`);
    assert.deepEqual(wireFailures.slice(0, 20), [], `seed ${SEED}`);
    // A real client still gets in, and a wrong password still gets the usual answer.
    const c = await connectPg(tenant.url);
    assert.deepEqual((await c.query("select 1 as x")).rows, [{ x: 1 }]);
    await c.end();
    await assert.rejects(connectPg(tenant.url.replace(/:[^:@]+@/, ":wrong-password@")), (e: pg.DatabaseError) => e.code === "28P01");
    // No start-up slot or connection slot leaked.
    assert.ok(await eventually(() => (sec.server.wire.sessionCounts().get(tenant.id) ?? 0) === 0, 10_000), `open wire sessions: ${sec.server.wire.sessionCounts().get(tenant.id) ?? 0}`);
  });
});
