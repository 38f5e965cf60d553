import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { writeSecretFile } from "./user-config.js";

/**
 * ccpd's own secret (32 bytes in `<data-dir>/secret.key`, mode 0600): seals wire
 * passwords in the catalog so `ccp db info --show-secrets` can show a
 * DATABASE_URL, and seeds decoy SCRAM salts. Replicas sharing an external
 * catalog must share this file.
 */
export function loadOrCreateSecret(dataDir: string): Buffer {
  const file = path.join(dataDir, "secret.key");
  if (!existsSync(file)) writeSecretFile(file, randomBytes(32).toString("base64"));
  const key = Buffer.from(readFileSync(file, "utf8").trim(), "base64");
  if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte key`);
  return key;
}

/** AES-256-GCM: base64(iv ‖ tag ‖ ciphertext). */
export function seal(key: Buffer, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ct]).toString("base64");
}

export function unseal(key: Buffer, sealed: string): string {
  const raw = Buffer.from(sealed, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
}
