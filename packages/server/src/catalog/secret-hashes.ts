import type { Queryable } from "./sql.js";

/** `ccp.api_keys` (admin API keys) and `ccp.metrics_tokens`: hashes only, never the secrets. */
export class SecretHashesTable {
  readonly #q: Queryable;
  readonly #table: "ccp.api_keys" | "ccp.metrics_tokens";
  readonly #column: "key_hash" | "token_hash";

  constructor(q: Queryable, table: "ccp.api_keys" | "ccp.metrics_tokens") {
    this.#q = q;
    this.#table = table;
    this.#column = table === "ccp.api_keys" ? "key_hash" : "token_hash";
  }

  async count(): Promise<number> {
    const { rows } = await this.#q.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#table}`);
    return Number(rows[0]?.n ?? 0);
  }

  async add(hash: string): Promise<void> {
    await this.#q.query(`INSERT INTO ${this.#table} (${this.#column}) VALUES ($1)`, [hash]);
  }

  async hashes(): Promise<string[]> {
    const { rows } = await this.#q.query<{ hash: string }>(`SELECT ${this.#column} AS hash FROM ${this.#table}`);
    return rows.map((r) => r.hash);
  }
}
