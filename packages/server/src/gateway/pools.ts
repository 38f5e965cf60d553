import type { InstanceEndpoint } from "../runtime/driver.js";
import { Session } from "./session.js";

export interface PoolSettings {
  /** Server connections per (instance, database) kept by the gateway. */
  readonly size: number;
  readonly statementTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/**
 * Connection settings every gateway session starts with. RESET ALL (part of
 * DISCARD ALL) returns to these, so a tenant's SET never outlives its request.
 */
function startupOptions(s: PoolSettings): string {
  return [
    "-c DateStyle=ISO,MDY",
    "-c TimeZone=UTC",
    "-c IntervalStyle=postgres",
    "-c bytea_output=hex",
    "-c extra_float_digits=1",
    `-c statement_timeout=${s.statementTimeoutMs}`,
    "-c application_name=ccp-gateway",
  ].join(" ");
}

/**
 * Sessions of one (instance, database, role): at most `size`, idle ones reused
 * last-in first-out (the warmest backend), waiters served in arrival order.
 * Written here rather than pg.Pool because it pools our Session (session.ts).
 */
export class SessionPool {
  readonly #endpoint: InstanceEndpoint;
  readonly #startup: Record<string, string>;
  readonly #size: number;
  readonly #idle: Session[] = [];
  readonly #waiters: { resolve(s: Session): void; reject(err: Error): void }[] = [];
  #open = 0;
  #ended = false;

  constructor(endpoint: InstanceEndpoint, startup: Record<string, string>, size: number) {
    this.#endpoint = endpoint;
    this.#startup = startup;
    this.#size = size;
  }

  acquire(): Promise<Session> {
    if (this.#ended) return Promise.reject(new Error("the gateway pool is closed"));
    for (let s = this.#idle.pop(); s; s = this.#idle.pop()) {
      if (!s.closed) return Promise.resolve(s);
      this.#open--;
    }
    if (this.#open < this.#size) {
      this.#open++;
      return Session.connect(this.#endpoint, this.#startup).catch((err: Error) => {
        this.#open--;
        this.#serveWaiter();
        throw err;
      });
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Reset the session (session.settle) and hand it to the next waiter or the idle list; drop it when it cannot be reset. */
  async release(session: Session, broken: boolean): Promise<void> {
    const clean = !broken && !this.#ended && (await session.settle());
    if (!clean) {
      session.destroy();
      this.#open--;
      this.#serveWaiter();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) return waiter.resolve(session);
    session.idleSince = Date.now();
    this.#idle.push(session);
  }

  /** A slot freed up: open a session for the longest waiter. */
  #serveWaiter(): void {
    const waiter = this.#waiters.shift();
    if (!waiter) return;
    this.acquire().then(waiter.resolve, waiter.reject);
  }

  /** Close sessions idle for longer than `ms`. */
  sweep(ms: number, now = Date.now()): void {
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const s = this.#idle[i] as Session;
      if (now - s.idleSince >= ms || s.closed) {
        this.#idle.splice(i, 1);
        s.destroy();
        this.#open--;
      }
    }
  }

  get empty(): boolean {
    return this.#open === 0 && this.#waiters.length === 0;
  }

  end(): void {
    this.#ended = true;
    for (const s of this.#idle.splice(0)) s.destroy();
    for (const w of this.#waiters.splice(0)) w.reject(new Error("the gateway pool is closed"));
  }
}

/** One SessionPool per (instance, database, role), connecting over the instance's unix socket. */
export class GatewayPools {
  readonly #pools = new Map<string, SessionPool>();
  readonly #settings: PoolSettings;
  readonly #timer: NodeJS.Timeout;

  constructor(settings: PoolSettings) {
    this.#settings = Object.freeze({ ...settings });
    this.#timer = setInterval(() => this.#sweep(), Math.max(1_000, settings.idleTimeoutMs / 2));
    this.#timer.unref();
  }

  get(id: string, endpoint: InstanceEndpoint, user: string, database: string): SessionPool {
    const key = `${id}\u0000${database}\u0000${user}`;
    let pool = this.#pools.get(key);
    if (!pool) {
      pool = new SessionPool(endpoint, { user, database, options: startupOptions(this.#settings) }, this.#settings.size);
      this.#pools.set(key, pool);
    }
    return pool;
  }

  #sweep(): void {
    for (const [key, pool] of this.#pools) {
      pool.sweep(this.#settings.idleTimeoutMs);
      if (pool.empty) this.#pools.delete(key);
    }
  }

  /** Close every pool of an instance (destroy, restore, stop). */
  async forget(id: string): Promise<void> {
    for (const [key, pool] of this.#pools) {
      if (key.startsWith(`${id}\u0000`)) {
        this.#pools.delete(key);
        pool.end();
      }
    }
    await Promise.resolve();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    for (const pool of this.#pools.values()) pool.end();
    this.#pools.clear();
    await Promise.resolve();
  }
}
