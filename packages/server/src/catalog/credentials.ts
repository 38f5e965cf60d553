import type { Queryable } from "./sql.js";

/**
 * `ccp.credentials`: per database and role, the SCRAM verifier the wire proxy
 * checks and the password sealed with the data dir's secret.
 */
export class CredentialsTable {
  readonly #q: Queryable;

  constructor(q: Queryable) {
    this.#q = q;
  }

  async insert(databaseId: string, role: string, scramVerifier: string, passwordSealed: string): Promise<void> {
    await this.#q.query("INSERT INTO ccp.credentials (database_id, role, scram_verifier, password_sealed) VALUES ($1, $2, $3, $4)", [
      databaseId,
      role,
      scramVerifier,
      passwordSealed,
    ]);
  }

  /** Replace a role's verifier and sealed password together; false when the role has no credentials. */
  async update(databaseId: string, role: string, scramVerifier: string, passwordSealed: string): Promise<boolean> {
    const { rowCount } = await this.#q.query(
      "UPDATE ccp.credentials SET scram_verifier = $3, password_sealed = $4, updated_at = now() WHERE database_id = $1 AND role = $2",
      [databaseId, role, scramVerifier, passwordSealed],
    );
    return rowCount === 1;
  }

  async scramVerifier(databaseId: string, role: string): Promise<string | undefined> {
    const { rows } = await this.#q.query<{ scram_verifier: string }>("SELECT scram_verifier FROM ccp.credentials WHERE database_id = $1 AND role = $2", [
      databaseId,
      role,
    ]);
    return rows[0]?.scram_verifier;
  }

  async sealedPassword(databaseId: string, role: string): Promise<string | undefined> {
    const { rows } = await this.#q.query<{ password_sealed: string }>("SELECT password_sealed FROM ccp.credentials WHERE database_id = $1 AND role = $2", [
      databaseId,
      role,
    ]);
    return rows[0]?.password_sealed;
  }
}
