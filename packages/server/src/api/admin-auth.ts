import type { Catalog } from "../catalog/catalog.js";
import { CcpError } from "../errors.js";
import { bearerToken, hashSecret, secretMatches } from "../ids.js";

/** Checks `Authorization: Bearer <admin key>` against the hashed keys in the catalog. */
export class AdminAuth {
  readonly #catalog: Catalog;
  #hashes: string[] = [];
  #loadedAt = 0;
  /** Keys valid in this process only, never stored (the web console's sessions act with one: console/auth.ts). */
  readonly #processHashes: string[] = [];

  constructor(catalog: Catalog) {
    this.#catalog = catalog;
  }

  allowProcessKey(key: string): void {
    this.#processHashes.push(hashSecret(key));
  }

  async load(): Promise<void> {
    this.#hashes = await this.#catalog.adminKeys.hashes();
    this.#loadedAt = Date.now();
  }

  async check(header: string | undefined): Promise<void> {
    const key = bearerToken(header);
    if (!key) {
      throw new CcpError("unauthorized", "Missing admin API key.", {
        hint: "Send `Authorization: Bearer <key>`; the CLI reads it from your ccp config (`ccp login --api-url URL --token KEY`).",
      });
    }
    let ok = this.#hashes.some((h) => secretMatches(key, h)) || this.#processHashes.some((h) => secretMatches(key, h));
    // Another ccpd sharing the catalog may have added a key: reload, at most once a second.
    if (!ok && Date.now() - this.#loadedAt > 1_000) {
      await this.load();
      ok = this.#hashes.some((h) => secretMatches(key, h));
    }
    if (!ok) {
      throw new CcpError("unauthorized", "The admin API key is not valid for this ccpd.", {
        hint: "Log in again with `ccp login --api-url URL --token KEY` using the key ccpd saved in its user config.",
      });
    }
  }
}
