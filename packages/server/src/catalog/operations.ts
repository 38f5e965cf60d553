import { one, type Queryable } from "./sql.js";

export interface OperationRow {
  readonly id: string;
  readonly database_id: string;
  readonly kind: string;
  readonly state: "running" | "done" | "failed";
}

/**
 * `ccp.operations`: the intent-first record of every multi-step operation.
 * `begin` before acting (in the same transaction as the rows it is about),
 * `finish` once done; reconciliation on start-up finishes or undoes what is
 * still running.
 */
export class OperationsTable {
  readonly #q: Queryable;

  constructor(q: Queryable) {
    this.#q = q;
  }

  /** Record an operation as running; returns its id. */
  async begin(databaseId: string, kind: string): Promise<string> {
    const row = await one<{ id: string }>(this.#q, "INSERT INTO ccp.operations (database_id, kind, state) VALUES ($1, $2, 'running') RETURNING id::text", [
      databaseId,
      kind,
    ]);
    return row.id;
  }

  async finish(id: string, state: "done" | "failed", error: string | null = null): Promise<void> {
    await this.#q.query("UPDATE ccp.operations SET state = $2, error = $3, finished_at = now() WHERE id = $1", [id, state, error]);
  }

  async running(): Promise<OperationRow[]> {
    const { rows } = await this.#q.query<OperationRow>("SELECT id::text, database_id, kind, state FROM ccp.operations WHERE state = 'running' ORDER BY id");
    return rows;
  }
}
