import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * Issue 13, item 2: a request whose body never arrives (Content-Length: 100
 * with 7 bytes sent; a chunk size of ffffffffffffffff), or whose headers never
 * end, was held open forever, without any token: 200 of 200 sockets were still
 * open after 75 s. Now header, body and keep-alive timeouts close them, and the
 * connections without a complete request are bounded.
 */
describe("regression: requests whose body never arrives are held open forever", () => {
  let t: TestServer;
  let port: number;

  before(async () => {
    t = await startTestServer("stalled", { http: { headersTimeoutMs: 1_000, requestTimeoutMs: 1_500, keepAliveTimeoutMs: 1_000, maxPendingConnections: 40 } });
    port = Number(new URL(t.server.url).port);
  });
  after(() => t.dispose());

  /** Open a socket, send `bytes`, and resolve with how it ended (or "open" after `ms`). */
  function stall(bytes: string): { closed: Promise<void>; socket: net.Socket } {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.on("data", () => undefined);
    socket.write(bytes);
    return { socket, closed: new Promise((resolve) => socket.once("close", () => resolve())) };
  }

  const STALLS = [
    "POST /query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sql\":",
    "POST /v1/databases HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{\"name\"",
    "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ",
    "",
  ];

  it("closes stalled requests by their timeouts while a legitimate request is served", async () => {
    const stalled = Array.from({ length: 30 }, (_, i) => stall(STALLS[i % STALLS.length] as string));
    const health = await t.http("/v1/health");
    assert.equal(health.status, 200);
    const outcome = await Promise.race([
      Promise.all(stalled.map((s) => s.closed)).then(() => "all closed"),
      new Promise<string>((resolve) => setTimeout(() => resolve("still open after 20 s"), 20_000).unref()),
    ]);
    for (const s of stalled) s.socket.destroy();
    assert.equal(outcome, "all closed");
  });

  it("bounds the connections without a complete request: the oldest are closed, a new client is served", async () => {
    // Timeouts far longer than this test waits: only the bound of 40 can close anything here.
    await t.dispose();
    t = await startTestServer("pending", { http: { headersTimeoutMs: 60_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 60_000, maxPendingConnections: 40 } });
    port = Number(new URL(t.server.url).port);
    const stalled = Array.from({ length: 60 }, () => stall(""));
    await new Promise((r) => setTimeout(r, 200));
    const health = await t.http("/v1/health");
    assert.equal(health.status, 200);
    const closedSoon = await Promise.all(
      stalled.map((s) => Promise.race([s.closed.then(() => 1), new Promise<number>((r) => setTimeout(() => r(0), 2_000).unref())])),
    );
    for (const s of stalled) s.socket.destroy();
    assert.ok(closedSoon.reduce((a, b) => a + b, 0) >= 20, `only ${closedSoon.reduce((a, b) => a + b, 0)} of 60 pending connections were closed by the bound of 40`);
  });
});
