import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * SCRAM-SHA-256 (RFC 5802 / RFC 7677), server side, as Postgres does it: the
 * catalog keeps only a verifier in Postgres's own format
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, never the password.
 */
export interface ScramVerifier {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

const ITERATIONS = 4096;
const hmac = (key: Buffer, data: string | Buffer) => createHmac("sha256", key).update(data).digest();
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest();

export function makeVerifier(password: string, salt = randomBytes(16), iterations = ITERATIONS): string {
  const salted = pbkdf2Sync(password.normalize("NFKC"), salt, iterations, 32, "sha256");
  const storedKey = sha256(hmac(salted, "Client Key"));
  const serverKey = hmac(salted, "Server Key");
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

export function parseVerifier(text: string): ScramVerifier {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(text);
  if (!m) throw new Error("Not a SCRAM-SHA-256 verifier");
  return {
    iterations: Number(m[1]),
    salt: Buffer.from(m[2] as string, "base64"),
    storedKey: Buffer.from(m[3] as string, "base64"),
    serverKey: Buffer.from(m[4] as string, "base64"),
  };
}

/**
 * A verifier nobody can satisfy, derived from `key` so that repeated attempts
 * against an unknown database see the same salt (no way to tell unknown from
 * wrong password).
 */
export function decoyVerifier(secret: Buffer, key: string): ScramVerifier {
  return {
    iterations: ITERATIONS,
    salt: hmac(secret, `salt:${key}`).subarray(0, 16),
    storedKey: hmac(secret, `stored:${key}`),
    serverKey: hmac(secret, `server:${key}`),
  };
}

export class ScramError extends Error {}

/** One SCRAM exchange. first() answers the client-first message, final() the client-final. */
export class ScramExchange {
  readonly #v: ScramVerifier;
  #clientFirstBare = "";
  #serverFirst = "";
  #nonce = "";
  #gs2Header = "";

  constructor(verifier: ScramVerifier) {
    this.#v = verifier;
  }

  /** client-first-message → server-first-message. */
  first(clientFirst: string): string {
    // gs2-header: "n,," (no channel binding) or "y,," (client could, server did not offer); "p=" needs -PLUS, not offered.
    const m = /^([ny]),(?:a=[^,]*)?,(n=[^,]*,r=([^,]+)(?:,.*)?)$/.exec(clientFirst);
    if (!m) throw new ScramError("malformed SCRAM client-first-message");
    this.#gs2Header = clientFirst.slice(0, clientFirst.length - (m[2] as string).length);
    this.#clientFirstBare = m[2] as string;
    this.#nonce = (m[3] as string) + randomBytes(18).toString("base64");
    this.#serverFirst = `r=${this.#nonce},s=${this.#v.salt.toString("base64")},i=${this.#v.iterations}`;
    return this.#serverFirst;
  }

  /** client-final-message → server-final-message, or throws when the proof is wrong. */
  final(clientFinal: string): string {
    const m = /^c=([^,]*),r=([^,]*),(?:.*,)?p=([^,]+)$/.exec(clientFinal);
    if (!m) throw new ScramError("malformed SCRAM client-final-message");
    if (Buffer.from(m[1] as string, "base64").toString("latin1") !== this.#gs2Header) throw new ScramError("SCRAM channel binding mismatch");
    if (m[2] !== this.#nonce) throw new ScramError("SCRAM nonce mismatch");
    const withoutProof = clientFinal.slice(0, clientFinal.lastIndexOf(",p="));
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const proof = Buffer.from(m[3] as string, "base64");
    const signature = hmac(this.#v.storedKey, authMessage);
    if (proof.length !== signature.length) throw new ScramError("wrong password");
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = (proof[i] as number) ^ (signature[i] as number);
    if (!timingSafeEqual(sha256(clientKey), this.#v.storedKey)) throw new ScramError("wrong password");
    return `v=${hmac(this.#v.serverKey, authMessage).toString("base64")}`;
  }
}
