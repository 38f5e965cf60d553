import type { InstanceEndpoint } from "../runtime/driver.js";
import { Session } from "./session.js";

export interface PoolSettings {
  /**
   * Server connections the gateway keeps to one instance, all its databases and
   * roles together: with the wire endpoint's limit, what an instance accepts
   * (see config.ts) is never exceeded by ccp's own pools.
   */
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
 * The gateway's connection slots to one instance, shared by its pools (one per
 * database and role). A pool that finds them all taken takes an idle session of
 * a sibling pool, or waits; a slot freed by one pool serves a sibling's waiter.
 */
class InstanceSlots {
  open = 0;
  readonly pools = new Set<SessionPool>();
  /** Mutable: a database's connections limit may change while its pools live. */
  constructor(public size: number) {}

  /** Close one idle session of another pool to make room; false when none is idle. */
  reclaimIdle(except: SessionPool): boolean {
    for (const pool of this.pools) if (pool !== except && pool.dropOneIdle()) return true;
    return false;
  }

  /** A slot freed up: give it to the first pool with a waiter. */
  serveWaiter(): void {
    for (const pool of this.pools) if (pool.serveWaiter()) return;
  }
}

/**
 * Sessions of one (instance, database, role), idle ones reused last-in
 * first-out (the warmest backend), waiters served in arrival order; the number
 * open is bounded by the instance's slots. Written here rather than pg.Pool
 * because it pools our Session (session.ts).
 */
export class SessionPool {
  readonly #endpoint: InstanceEndpoint;
  readonly #startup: Record<string, string>;
  readonly #slots: InstanceSlots;
  readonly #idle: Session[] = [];
  readonly #waiters: { resolve(s: Session): void; reject(err: Error): void }[] = [];
  #open = 0;
  #ended = false;

  constructor(endpoint: InstanceEndpoint, startup: Record<string, string>, slots: InstanceSlots) {
    this.#endpoint = endpoint;
    this.#startup = startup;
    this.#slots = slots;
    slots.pools.add(this);
  }

  acquire(): Promise<Session> {
    if (this.#ended) return Promise.reject(new Error("the gateway pool is closed"));
    for (let s = this.#idle.pop(); s; s = this.#idle.pop()) {
      if (!s.closed) return Promise.resolve(s);
      this.#closed();
    }
    if (this.#slots.open < this.#slots.size || this.#slots.reclaimIdle(this)) {
      this.#open++;
      this.#slots.open++;
      return Session.connect(this.#endpoint, this.#startup).catch((err: Error) => {
        this.#closed();
        this.#slots.serveWaiter();
        throw err;
      });
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Reset the session (session.settle) and hand it to the next waiter or the idle list; drop it when it cannot be reset. */
  async release(session: Session, broken: boolean): Promise<void> {
    const clean = !broken && !this.#ended && (await session.settle());
    const waiter = clean ? this.#waiters.shift() : undefined;
    if (waiter) return waiter.resolve(session);
    if (!clean || this.#siblingWaits()) {
      // Unusable, or a sibling pool of the instance is waiting for a slot: free this one.
      session.destroy();
      this.#closed();
      this.#slots.serveWaiter();
      return;
    }
    session.idleSince = Date.now();
    this.#idle.push(session);
  }

  #siblingWaits(): boolean {
    for (const pool of this.#slots.pools) if (pool !== this && pool.waiting) return true;
    return false;
  }

  #closed(): void {
    this.#open--;
    this.#slots.open--;
  }

  get waiting(): boolean {
    return this.#waiters.length > 0;
  }

  /** Open a session for the longest waiter, if any; true when there was one. */
  serveWaiter(): boolean {
    const waiter = this.#waiters.shift();
    if (!waiter) return false;
    this.acquire().then(waiter.resolve, waiter.reject);
    return true;
  }

  /** Close one idle session (a sibling pool needs the slot); false when none is idle. */
  dropOneIdle(): boolean {
    const s = this.#idle.shift(); // the coldest
    if (!s) return false;
    s.destroy();
    this.#closed();
    return true;
  }

  /** Close sessions idle for longer than `ms`. */
  sweep(ms: number, now = Date.now()): void {
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const s = this.#idle[i] as Session;
      if (now - s.idleSince >= ms || s.closed) {
        this.#idle.splice(i, 1);
        s.destroy();
        this.#closed();
      }
    }
  }

  /** Sessions lent out, idle in the pool, and requests waiting for one (metrics). */
  figures(): { inUse: number; idle: number; waiting: number } {
    return { inUse: this.#open - this.#idle.length, idle: this.#idle.length, waiting: this.#waiters.length };
  }

  get empty(): boolean {
    return this.#open === 0 && this.#waiters.length === 0;
  }

  end(): void {
    this.#ended = true;
    this.#slots.pools.delete(this);
    for (const s of this.#idle.splice(0)) {
      s.destroy();
      this.#closed();
    }
    for (const w of this.#waiters.splice(0)) w.reject(new Error("the gateway pool is closed"));
  }
}

/** One SessionPool per (instance, database, role), connecting over the instance's unix socket. */
export class GatewayPools {
  readonly #pools = new Map<string, SessionPool>();
  readonly #slots = new Map<string, InstanceSlots>();
  readonly #settings: PoolSettings;
  readonly #timer: NodeJS.Timeout;

  constructor(settings: PoolSettings) {
    this.#settings = Object.freeze({ ...settings });
    this.#timer = setInterval(() => this.#sweep(), Math.max(1_000, settings.idleTimeoutMs / 2));
    this.#timer.unref();
  }

  /** `size`: this instance's slots when its limits allow fewer than the settings' (connections limit). */
  get(id: string, endpoint: InstanceEndpoint, user: string, database: string, size = this.#settings.size): SessionPool {
    const key = `${id}\u0000${database}\u0000${user}`;
    const existing = this.#slots.get(id);
    if (existing) existing.size = size;
    let pool = this.#pools.get(key);
    if (!pool) {
      let slots = this.#slots.get(id);
      if (!slots) this.#slots.set(id, (slots = new InstanceSlots(size)));
      pool = new SessionPool(endpoint, { user, database, options: startupOptions(this.#settings) }, slots);
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /** Figures of every pool, by database id (metrics). */
  figures(): { databaseId: string; inUse: number; idle: number; waiting: number }[] {
    return [...this.#pools].map(([key, pool]) => ({ databaseId: key.slice(0, key.indexOf("\u0000")), ...pool.figures() }));
  }

  #sweep(): void {
    for (const [key, pool] of this.#pools) {
      pool.sweep(this.#settings.idleTimeoutMs);
      if (pool.empty) {
        this.#pools.delete(key);
        pool.end();
      }
    }
    for (const [id, slots] of this.#slots) if (slots.pools.size === 0 && slots.open <= 0) this.#slots.delete(id);
  }

  /** Close every pool of an instance (destroy, restore, stop). */
  forget(id: string): void {
    for (const [key, pool] of this.#pools) {
      if (key.startsWith(`${id}\u0000`)) {
        this.#pools.delete(key);
        pool.end();
      }
    }
    this.#slots.delete(id);
  }

  close(): void {
    clearInterval(this.#timer);
    for (const pool of this.#pools.values()) pool.end();
    this.#pools.clear();
  }
}
