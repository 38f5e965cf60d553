import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** `db-` + 12 lowercase hex characters, as in seed 000. */
export function newDatabaseId(): string {
  return `db-${randomBytes(6).toString("hex")}`;
}

/** A database id's shape, for patterns that embed it (a host, a wire user name); the one place it is spelled. */
export const DATABASE_ID_SHAPE = "db-[0-9a-f]{12}";

export const DATABASE_ID_PATTERN = new RegExp(`^${DATABASE_ID_SHAPE}$`);

/** 256 random bits, hex: the HTTP token of a database (shown once, stored hashed). */
export function newDatabaseToken(): string {
  return randomBytes(32).toString("hex");
}

/** The wire-protocol password of a database: 192 random bits, URL-safe. */
export function newDatabasePassword(): string {
  return randomBytes(24).toString("base64url");
}

/** Admin API keys carry a prefix so they are recognisable in config files and logs. */
export function newAdminKey(): string {
  return `ccpk_${randomBytes(32).toString("hex")}`;
}

/** Read-only tokens for GET /metrics: a prefix of their own, so they are never mistaken for admin keys. */
export function newMetricsToken(): string {
  return `ccpm_${randomBytes(32).toString("hex")}`;
}

/**
 * Tokens are 256-bit random strings, so a fast hash is enough: there is nothing to
 * brute-force. Stored as hex.
 */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** Constant-time comparison of a presented secret against a stored hash. */
export function secretMatches(presented: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(presented), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The credential of `Authorization: Bearer <credential>`, or undefined. One parser for admin keys and database tokens. */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];
}
