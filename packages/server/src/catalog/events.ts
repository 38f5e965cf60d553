import type { Queryable } from "./sql.js";

export interface EventRow {
  readonly id: string;
  readonly kind: string;
  readonly detail: Record<string, unknown>;
  readonly at: Date;
}

/** `ccp.instance_events`: platform events of a database (`ccp db logs`, restarts). */
export class EventsTable {
  readonly #q: Queryable;

  constructor(q: Queryable) {
    this.#q = q;
  }

  /** Record a platform event of a database; `detail` must never hold a secret. */
  async record(id: string, kind: string, detail: Record<string, unknown> = {}): Promise<void> {
    await this.#q.query("INSERT INTO ccp.instance_events (database_id, kind, detail) VALUES ($1, $2, $3)", [id, kind, JSON.stringify(detail)]);
  }

  async restarts(id: string): Promise<{ at: Date; detail: Record<string, unknown> }[]> {
    const { rows } = await this.#q.query<{ at: Date; detail: Record<string, unknown> }>(
      "SELECT at, detail FROM ccp.instance_events WHERE database_id = $1 AND kind = 'restart' ORDER BY id",
      [id],
    );
    return rows;
  }

  /** A database's events since `since`, after event id `afterId` (for following), oldest first. */
  async since(id: string, since: Date, afterId = "0", limit = 10_000): Promise<EventRow[]> {
    const { rows } = await this.#q.query<EventRow>(
      "SELECT id::text, kind, detail, at FROM ccp.instance_events WHERE database_id = $1 AND at >= $2 AND id > $3 ORDER BY id LIMIT $4",
      [id, since, afterId, limit],
    );
    return rows;
  }

  /** Drop events older than `days` days, and those of databases that are gone. */
  async prune(days: number): Promise<void> {
    await this.#q.query(
      "DELETE FROM ccp.instance_events e WHERE e.at < now() - make_interval(days => $1) OR NOT EXISTS (SELECT 1 FROM ccp.databases d WHERE d.id = e.database_id)",
      [days],
    );
  }
}
