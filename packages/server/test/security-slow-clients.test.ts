import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { eventually, startSecurityServer, type SecurityServer, type Tenant } from "./support/security.js";
import { connectPg } from "./wire-clients.js";

/**
 * Slow and stalled clients: 500 HTTP requests that never complete and 200 wire
 * start-ups that never finish, all open at once. Each must be closed by ccpd's
 * own timeouts (6 s here; 10 s by default), and legitimate clients
 * must be served while they are all open. Nothing here asserts how fast: only
 * that every stalled socket is closed within its timeout plus a generous 10 s.
 */
const HTTP_STALLS = 500;
const WIRE_STALLS = 200;
const TIMEOUT_MS = 6_000;
const GRACE_MS = 10_000;

interface Stall {
  readonly kind: string;
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  isClosed: boolean;
  drip?: NodeJS.Timeout;
}

describe("security: slow and stalled clients are closed by timeouts while others are served", () => {
  let sec: SecurityServer;
  let tenant: Tenant;
  let port = 0;

  before(async () => {
    sec = await startSecurityServer(
      "slow",
      ["slow-a"],
      { http: { headersTimeoutMs: TIMEOUT_MS, requestTimeoutMs: TIMEOUT_MS, keepAliveTimeoutMs: TIMEOUT_MS, maxPendingConnections: 1_000 } },
      (c) => ({ ...c, wireStartupTimeoutMs: TIMEOUT_MS }),
    );
    tenant = sec.tenants[0] as Tenant;
    port = Number(new URL(sec.server.url).port);
    // Warm the gateway's pool and the wire path first, so the legitimate requests below take
    // milliseconds, far inside the stalled sockets' timeouts.
    await legitimateClients();
  });

  async function legitimateClients(): Promise<void> {
    const query = await fetch(`${sec.server.url}/v1/databases/${tenant.id}/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${tenant.token}`, "content-type": "application/json" },
      body: JSON.stringify({ sql: "select $1::int * 2 as n", params: [21] }),
    });
    assert.equal(query.status, 200);
    assert.deepEqual(((await query.json()) as { rows: unknown }).rows, [{ n: 42 }]);
    const neon = await fetch(`${sec.server.url}/sql`, {
      method: "POST",
      headers: { "neon-connection-string": `postgresql://clusterbase:${tenant.token}@${tenant.id}.localhost/default` },
      body: JSON.stringify({ query: "select 1 as one", params: [] }),
    });
    assert.equal(neon.status, 200);
    const c = await connectPg(tenant.url);
    assert.deepEqual((await c.query("select 2 as two")).rows, [{ two: 2 }]);
    await c.end();
  }
  after(() => sec?.close());

  function open(targetPort: number, kind: string, first: Buffer | string, drip?: Buffer | string): Stall {
    const socket = net.connect(targetPort, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.on("data", () => undefined);
    const stall: Stall = { kind, socket, isClosed: false, closed: new Promise((resolve) => socket.once("close", () => resolve())) };
    void stall.closed.then(() => {
      stall.isClosed = true;
      clearInterval(stall.drip);
    });
    socket.once("connect", () => {
      if (first.length > 0) socket.write(first);
      if (drip !== undefined) {
        const bytes = Buffer.from(drip);
        let i = 0;
        stall.drip = setInterval(() => {
          if (!socket.destroyed) socket.write(bytes.subarray(i % bytes.length, (i % bytes.length) + 1));
          i++;
        }, 250);
      }
    });
    return stall;
  }

  const int32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return b;
  };
  const startupPacket = (user: string) => {
    const body = Buffer.from(`user\0${user}\0database\0default\0\0`);
    return Buffer.concat([int32(8 + body.length), int32(196608), body]);
  };
  const saslInitial = () => {
    const data = Buffer.from("n,,n=,r=abcdefghijklmnop");
    const body = Buffer.concat([Buffer.from("SCRAM-SHA-256\0"), int32(data.length), data]);
    return Buffer.concat([Buffer.from("p"), int32(body.length + 4), body]);
  };

  const HTTP_KINDS: [string, string, string?][] = [
    ["Content-Length: 100 with 7 bytes sent", `POST /v1/databases/ID/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer T\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"sql":`],
    ["chunk size ffffffffffffffff", `POST /sql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{"query"`],
    ["headers never finished", "POST /query HTTP/1.1\r\nHost: x\r\nX-Slow: "],
    ["nothing sent", ""],
    ["request line cut short", "POST /v1/data"],
    ["headers dripped a byte at a time", "GET /v1/health HTTP/1.1\r\n", "X-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
    ["body dripped a byte at a time", `POST /v1/databases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer A\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`, '{"name":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'],
    ["admin API body never arrives", `POST /v1/databases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer A\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"na`],
    ["keep-alive connection left idle after a request", "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"],
  ];

  const wireKinds = (): [string, Buffer, Buffer?][] => [
    ["nothing sent", Buffer.alloc(0)],
    ["3 bytes of a length", Buffer.from([0, 0, 0])],
    ["a length of 100, then 10 bytes", Buffer.concat([int32(100), Buffer.alloc(10, 1)])],
    ["SSLRequest, then no TLS handshake", Buffer.concat([int32(8), int32(80877103)])],
    ["direct TLS: one byte of a ClientHello", Buffer.from([0x16])],
    ["a start-up, then no SASL response", startupPacket(`clusterbase.${tenant.id}`)],
    ["a start-up and SASLInitialResponse, then nothing", Buffer.concat([startupPacket(`clusterbase.${tenant.id}`), saslInitial()])],
    ["a start-up dripped a byte at a time", Buffer.alloc(0), startupPacket(`clusterbase.${tenant.id}`)],
  ];

  function fdLimit(): number {
    const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync("/proc/self/limits", "utf8"));
    return m?.[1] === undefined || m[1] === "unlimited" ? Infinity : Number(m[1]);
  }

  it(`${HTTP_STALLS} stalled HTTP requests and ${WIRE_STALLS} half-open wire start-ups are all closed by their timeouts; /query, /sql and the wire endpoint serve meanwhile`, async () => {
    // Both ends of every stalled socket live in this process, plus ccpd's instances' files.
    const needed = 2 * (HTTP_STALLS + WIRE_STALLS) + 300;
    assert.ok(fdLimit() >= needed, `this test needs about ${needed} file descriptors; ulimit -n is ${fdLimit()} (raise it: ulimit -n 4096)`);

    const stalls: Stall[] = [];
    for (let i = 0; i < HTTP_STALLS; i++) {
      const [kind, first, drip] = HTTP_KINDS[i % HTTP_KINDS.length] as [string, string, string?];
      stalls.push(open(port, `HTTP: ${kind}`, first.replace("ID", tenant.id).replace("Bearer T", `Bearer ${tenant.token}`).replace("Bearer A", `Bearer ${sec.adminKey}`), drip));
    }
    const kinds = wireKinds();
    for (let i = 0; i < WIRE_STALLS; i++) {
      const [kind, first, drip] = kinds[i % kinds.length] as [string, Buffer, Buffer?];
      stalls.push(open(sec.server.wirePort, `wire: ${kind}`, first, drip));
    }
    await Promise.all(stalls.map((s) => new Promise<void>((resolve) => (s.socket.connecting ? s.socket.once("connect", () => resolve()).once("close", () => resolve()) : resolve()))));

    try {
      // Legitimate clients, while every stalled socket is open.
      await legitimateClients();
      const openDuring = stalls.filter((s) => !s.isClosed).length;

      console.log(`slow clients: legitimate /query, /sql and a wire session served while ${openDuring} of ${stalls.length} stalled sockets were open`);
      assert.equal(openDuring, stalls.length, "a stalled socket was closed before its timeout could have passed, or failed to connect");

      // Every stalled socket is closed by ccpd (not by us), within its timeout plus the grace.
      const allClosed = await eventually(() => stalls.every((s) => s.isClosed), TIMEOUT_MS + GRACE_MS, 200);
      const open = new Map<string, number>();
      for (const s of stalls.filter((x) => !x.isClosed)) open.set(s.kind, (open.get(s.kind) ?? 0) + 1);
      assert.ok(allClosed, `still open after ${TIMEOUT_MS + GRACE_MS} ms: ${JSON.stringify(Object.fromEntries(open))}`);
      console.log(`slow clients: ${HTTP_STALLS} stalled HTTP requests and ${WIRE_STALLS} half-open wire start-ups, all closed by ccpd's timeouts`);
    } finally {
      for (const s of stalls) {
        clearInterval(s.drip);
        s.socket.destroy();
      }
    }

    // Nothing leaked: no wire session counted, and the endpoints still answer.
    assert.equal(sec.server.wire.sessionCounts().get(tenant.id) ?? 0, 0);
    const again = await fetch(`${sec.server.url}/v1/health`);
    assert.equal(again.status, 200);
  });
});
