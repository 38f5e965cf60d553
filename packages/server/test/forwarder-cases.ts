import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { withAdmin } from "../src/databases/admin-connection.js";
import type { RunningServer } from "../src/index.js";
import { forwarderKind, nativeSessions, type NativeEngine } from "../src/wire/forwarder.js";
import { startTestServer, type TestServer } from "./support/test-server.js";
import { connectPg, tlsBySni } from "./wire-clients.js";

/**
 * The wire endpoint's native forwarder (native/forwarder.c), one engine per
 * test process: forwarder.test.ts runs the default (io_uring on this kernel),
 * forwarder-epoll.test.ts the epoll fallback. wire.test.ts covers the protocol
 * itself (psql, pgbench, COPY, LISTEN, cancel, TLS) on the default engine.
 */
export function forwarderSuite(engine: NativeEngine): void {
  describe(`native wire forwarder on ${engine}`, () => {
    let t: TestServer;
    let server: RunningServer;
    let db: { id: string; url: string; password: string };

    before(async () => {
      t = await startTestServer(`fwd-${engine}`, { wireMaxConnections: 40 });
      server = t.server;
      const created = await server.databases.create("fwd-a");
      db = { id: created.database.id, url: created.database_url, password: created.password };
    });
    after(async () => {
      await t?.dispose();
    });

    const connect = connectPg;
    /** Poll `read` every 20 ms, at most `tries` times, until it gives `expected`; then assert it. */
    const reaches = async (read: () => number | Promise<number>, expected: number, tries: number) => {
      let n = await read();
      for (let i = 0; i < tries && n !== expected; i++) {
        await new Promise((r) => setTimeout(r, 20));
        n = await read();
      }
      assert.equal(n, expected);
    };
    /** The forwarder reports ended sessions from its thread: wait for the count to settle. */
    const settles = (expected: number) => reaches(nativeSessions, expected, 150);
    /** Tenant sessions on the instance, seen from ccpd's admin path. */
    const backends = async () => {
      const { rows } = await withAdmin(server.driver.endpoint(db.id), "postgres", (c) => c.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'clusterbase'"));
      return rows[0]?.n ?? -1;
    };
    /** Postgres notices a vanished client only at its next socket check (client_connection_check_interval). */
    const backendsSettle = (expected: number) => reaches(backends, expected, 300);

    it(`is built and runs on ${engine}; plain-TCP sessions go native, TLS sessions stay in Node`, async () => {
      // `npm install` builds it; without it every session would silently take the slower JavaScript path.
      assert.deepEqual(forwarderKind(), { kind: "native", engine });
      const before = nativeSessions();
      const plain = await connect(db.url);
      assert.equal(nativeSessions(), before + 1);
      const secure = await connect(tlsBySni(server, db.id, db.password));
      assert.equal(nativeSessions(), before + 1);
      assert.deepEqual((await plain.query("SELECT 1 AS x")).rows, [{ x: 1 }]);
      assert.deepEqual((await secure.query("SELECT 2 AS x")).rows, [{ x: 2 }]);
      await plain.end();
      await secure.end();
      await settles(before);
    });

    it("moves tens of megabytes both ways intact while the client stops reading", async () => {
      const c = await connect(db.url);
      const big = "0123456789abcdef".repeat(1 << 18); // 4 MiB up
      const { rows: up } = await c.query<{ md5: string; n: number }>("SELECT md5($1) AS md5, length($1) AS n", [big]);
      assert.deepEqual(up, [{ md5: createHash("md5").update(big).digest("hex"), n: big.length }]);
      // 24 MiB down: far more than the socket buffers, so the forwarder must hold bytes and wait.
      const stream = (c as unknown as { connection: { stream: net.Socket } }).connection.stream;
      const rows = c.query<{ s: string }>("SELECT repeat(md5(g::text), 32768) AS s FROM generate_series(1, 24) g");
      stream.pause();
      await new Promise((r) => setTimeout(r, 300));
      stream.resume();
      const got = (await rows).rows;
      assert.equal(got.length, 24);
      got.forEach((r, i) => assert.equal(r.s, createHash("md5").update(String(i + 1)).digest("hex").repeat(32768)));
      assert.deepEqual((await c.query("SELECT 'still in sync' AS s")).rows, [{ s: "still in sync" }]);
      await c.end();
    });

    it("keeps 30 concurrent sessions apart: each sees only its own answers", async () => {
      const clients = await Promise.all(Array.from({ length: 30 }, () => connect(db.url)));
      await Promise.all(
        clients.map(async (c, i) => {
          for (let k = 0; k < 20; k++) {
            const { rows } = await c.query<{ v: string }>("SELECT $1::text || '/' || pg_backend_pid() AS v", [`${i}:${k}`]);
            assert.match(rows[0]?.v ?? "", new RegExp(`^${i}:${k}/\\d+$`));
          }
        }),
      );
      await Promise.all(clients.map((c) => c.end()));
    });

    it("a client that vanishes (RST) mid-query ends its server session (client_connection_check_interval) and frees its slot", async () => {
      const baseline = await backends();
      const before = nativeSessions();
      const c = await connect(db.url);
      c.on("error", () => undefined);
      void c.query("SELECT pg_sleep(30)").catch(() => undefined);
      await backendsSettle(baseline + 1);
      (c as unknown as { connection: { stream: net.Socket } }).connection.stream.resetAndDestroy();
      await settles(before);
      await backendsSettle(baseline);
    });

    it("a server session that ends (pg_terminate_backend) reaches the client as its FATAL, then a close", async () => {
      const before = nativeSessions();
      const c = await connect(db.url);
      const pid = (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid;
      // pg reports the FATAL, then "Connection terminated unexpectedly": keep listening for both.
      const errors: Error[] = [];
      const failed = new Promise<Error>((resolve) => c.on("error", (e) => resolve(errors[errors.push(e) - 1] as Error)));
      await withAdmin(server.driver.endpoint(db.id), "postgres", (a) => a.query("SELECT pg_terminate_backend($1)", [pid]));
      await failed;
      assert.equal((errors[0] as Error & { code?: string }).code, "57P01"); // terminating connection due to administrator command
      await settles(before);
    });

    it("ends a database's sessions when the database is destroyed", async () => {
      const created = await server.databases.create("fwd-doomed");
      const before = nativeSessions();
      const c = await connect(created.database_url);
      const ended = new Promise<void>((resolve) => c.once("end", () => resolve()));
      c.on("error", () => undefined);
      await server.databases.destroy(created.database.id);
      await ended;
      await settles(before);
    });
  });
}
