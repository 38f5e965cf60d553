import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

/**
 * SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802 / RFC 7677, channel binding
 * `tls-server-end-point` of RFC 5929), server side, as Postgres does it: the
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

const pbkdf2Async = promisify(pbkdf2);

/**
 * A cleartext password (Neon's driver pipelines one over its WebSocket) checked
 * against the verifier, as Postgres does for `password` authentication of a
 * SCRAM secret: derive the client key and compare its hash with StoredKey.
 */
export async function passwordMatches(verifier: ScramVerifier, password: string): Promise<boolean> {
  const salted = await pbkdf2Async(password.normalize("NFKC"), verifier.salt, verifier.iterations, 32, "sha256");
  const storedKey = sha256(hmac(salted, "Client Key"));
  return storedKey.length === verifier.storedKey.length && timingSafeEqual(storedKey, verifier.storedKey);
}

/** The only channel-binding type Postgres (and so ccp) supports. */
export const CHANNEL_BINDING_TYPE = "tls-server-end-point";

/**
 * `tls-server-end-point` data (RFC 5929 §4.1): the hash of the server's DER
 * certificate with its signature's hash algorithm, SHA-256 when that is MD5 or
 * SHA-1. Undefined when the algorithm has no single hash (Ed25519, RSA-PSS with
 * parameters we do not parse): then -PLUS is not offered, as Postgres does.
 */
export function tlsServerEndPoint(certificateDer: Buffer): Buffer | undefined {
  const algorithm = SIGNATURE_HASH[signatureAlgorithmOid(certificateDer) ?? ""];
  return algorithm ? createHash(algorithm).update(certificateDer).digest() : undefined;
}

const SIGNATURE_HASH: Record<string, string> = {
  "1.2.840.113549.1.1.4": "sha256", // md5WithRSAEncryption
  "1.2.840.113549.1.1.5": "sha256", // sha1WithRSAEncryption
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.113549.1.1.14": "sha224",
  "1.2.840.10045.4.1": "sha256", // ecdsa-with-SHA1
  "1.2.840.10045.4.3.1": "sha224",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
};

/** Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, … }, … } */
function signatureAlgorithmOid(der: Buffer): string | undefined {
  const tlv = (at: number): { tag: number; start: number; end: number } | undefined => {
    if (at + 2 > der.length) return undefined;
    let len = der[at + 1] as number;
    let start = at + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4 || start + n > der.length) return undefined;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (der[start + i] as number);
      start += n;
    }
    return start + len <= der.length ? { tag: der[at] as number, start, end: start + len } : undefined;
  };
  const cert = tlv(0);
  const tbs = cert && cert.tag === 0x30 ? tlv(cert.start) : undefined;
  const alg = tbs ? tlv(tbs.end) : undefined;
  const oid = alg && alg.tag === 0x30 ? tlv(alg.start) : undefined;
  if (!oid || oid.tag !== 0x06 || oid.end <= oid.start) return undefined;
  const first = der[oid.start] as number;
  const arcs = [Math.min(2, Math.floor(first / 40)), first - 40 * Math.min(2, Math.floor(first / 40))];
  let value = 0;
  for (let i = oid.start + 1; i < oid.end; i++) {
    const b = der[i] as number;
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  return arcs.join(".");
}

/**
 * A failed exchange. `protocol` marks a client that broke the SCRAM rules
 * (Postgres answers 08P01 with the reason) rather than a wrong password (28P01,
 * the same answer whatever the cause).
 */
export class ScramError extends Error {
  constructor(
    message: string,
    readonly protocol = false,
  ) {
    super(message);
  }
}

export interface ScramChannel {
  /** The client picked SCRAM-SHA-256-PLUS. */
  readonly plus: boolean;
  /** tls-server-end-point data of this TLS session; undefined when -PLUS was not offered. */
  readonly binding: Buffer | undefined;
}

/** One SCRAM exchange. first() answers the client-first message, final() the client-final. */
export class ScramExchange {
  readonly #v: ScramVerifier;
  readonly #channel: ScramChannel;
  #clientFirstBare = "";
  #serverFirst = "";
  #nonce = "";
  #gs2Header = "";

  constructor(verifier: ScramVerifier, channel: ScramChannel = { plus: false, binding: undefined }) {
    this.#v = verifier;
    this.#channel = channel;
  }

  /** client-first-message → server-first-message. */
  first(clientFirst: string): string {
    // gs2-header: "n,," (no channel binding), "y,," (client could, thinks the server cannot), "p=<type>,," (-PLUS).
    const m = /^(n|y|p=([^,]*)),(?:a=[^,]*)?,(n=[^,]*,r=([^,]+)(?:,.*)?)$/.exec(clientFirst);
    // Malformed messages get the wrong-password answer, as before channel binding: no detail for a prober.
    if (!m) throw new ScramError("malformed SCRAM client-first-message");
    const flag = (m[1] as string)[0];
    // The checks and words of Postgres's read_client_first_message (auth-scram.c).
    if (flag === "p") {
      if (!this.#channel.plus || !this.#channel.binding) {
        throw new ScramError("The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.", true);
      }
      if (m[2] !== CHANNEL_BINDING_TYPE) throw new ScramError(`unsupported SCRAM channel-binding type "${m[2]}"`, true);
    } else {
      if (this.#channel.plus) throw new ScramError("The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data.", true);
      if (flag === "y" && this.#channel.binding) {
        throw new ScramError(
          "SCRAM channel binding negotiation error: the client supports SCRAM channel binding but thinks the server does not. However, this server does support channel binding.",
          true,
        );
      }
    }
    this.#gs2Header = clientFirst.slice(0, clientFirst.length - (m[3] as string).length);
    this.#clientFirstBare = m[3] as string;
    this.#nonce = (m[4] as string) + randomBytes(18).toString("base64");
    this.#serverFirst = `r=${this.#nonce},s=${this.#v.salt.toString("base64")},i=${this.#v.iterations}`;
    return this.#serverFirst;
  }

  /** client-final-message → server-final-message, or throws when the proof is wrong. */
  final(clientFinal: string): string {
    const m = /^c=([^,]*),r=([^,]*),(?:.*,)?p=([^,]+)$/.exec(clientFinal);
    if (!m) throw new ScramError("malformed SCRAM client-final-message");
    // c= is base64(gs2-header + channel-binding data): the certificate hash proves no one sits between client and ccpd.
    const expected = Buffer.concat([Buffer.from(this.#gs2Header, "latin1"), this.#channel.plus ? (this.#channel.binding as Buffer) : Buffer.alloc(0)]);
    const got = Buffer.from(m[1] as string, "base64");
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new ScramError("SCRAM channel binding check failed", true);
    }
    if (m[2] !== this.#nonce) throw new ScramError("SCRAM nonce mismatch", true);
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
