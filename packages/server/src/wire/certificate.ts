import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import selfsigned from "selfsigned";
import { writeSecretFile } from "../user-config.js";

export interface TlsFiles {
  readonly key: string;
  readonly cert: string;
  readonly certFile: string;
}

/**
 * The wire endpoint's certificate: the one given (`--tls-cert`/`--tls-key`), or a
 * self-signed one made on first start in `<data-dir>/tls/`, valid for the
 * database hosts `*.<domain>`.
 */
export async function ensureCertificate(dataDir: string, domain: string, given?: { certFile: string; keyFile: string }): Promise<TlsFiles> {
  if (given) return { key: readFileSync(given.keyFile, "utf8"), cert: readFileSync(given.certFile, "utf8"), certFile: given.certFile };
  const dir = path.join(dataDir, "tls");
  const keyFile = path.join(dir, "server.key");
  const certFile = path.join(dir, "server.crt");
  if (!existsSync(keyFile) || !existsSync(certFile)) {
    const pems = await selfsigned.generate([{ name: "commonName", value: `ccp ${domain}` }], {
      keySize: 2048,
      notAfterDate: new Date(Date.now() + 10 * 365 * 24 * 3600 * 1000),
      algorithm: "sha256",
      extensions: [
        {
          name: "subjectAltName",
          altNames: [
            { type: 2, value: `*.${domain}` },
            { type: 2, value: domain },
            { type: 2, value: "localhost" },
            { type: 7, ip: "127.0.0.1" },
          ],
        },
      ],
    });
    writeSecretFile(keyFile, pems.private);
    writeFileSync(certFile, pems.cert, { mode: 0o644 });
  }
  return { key: readFileSync(keyFile, "utf8"), cert: readFileSync(certFile, "utf8"), certFile };
}
