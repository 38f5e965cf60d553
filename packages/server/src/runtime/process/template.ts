import { appendFileSync, existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import type { PgBinaries } from "./binaries.js";
import { execFileAsync, makeDir } from "./fs-util.js";
import { PostgresServer, SOCKET_PORT } from "./postgres-server.js";
import type { RunAs } from "./system-user.js";


export const ADMIN_ROLE = "ccp_admin";
export const TENANT_ROLE = "clusterbase";
export const TENANT_DATABASE = "default";
export { INSTANCE_MAX_CONNECTIONS, TENANT_CONNECTION_SLOTS } from "../connection-slots.js";
import { INSTANCE_MAX_CONNECTIONS } from "../connection-slots.js";
const READY_MARKER = ".ccp-template-ready";

/**
 * Settings every instance starts with. Kept small: each instance is its own
 * server, and a machine runs many.
 */
const POSTGRESQL_CONF = `
# --- ccp ---
listen_addresses = ''
unix_socket_permissions = 0700
shared_buffers = 64MB
max_connections = ${INSTANCE_MAX_CONNECTIONS}
huge_pages = off
password_encryption = scram-sha-256
lc_messages = 'C'
log_line_prefix = '%m [%p] '
fsync = on
`;

const PG_HBA = `# ccp: the socket dir is 0700; only ccpd's OS user (mapped in pg_ident.conf) connects, as any role.
local all all peer map=ccp
`;

/**
 * Make (once per Postgres version) a pre-initialised data dir that new
 * instances copy: initdb costs ~0.6 s here, a copy and start ~0.1 s.
 * Built under a temporary name and renamed, so a crash never leaves half a template.
 */
export async function ensureTemplate(options: {
  bin: PgBinaries;
  templatesDir: string;
  runAs: RunAs | undefined;
  ccpdOsUser: string;
}): Promise<string> {
  const { bin, templatesDir, runAs } = options;
  const dir = path.join(templatesDir, `pg-${bin.version}`);
  if (existsSync(path.join(dir, READY_MARKER))) return dir;

  makeDir(templatesDir, 0o755, runAs);
  const work = path.join(templatesDir, `.build-${process.pid}-${Date.now()}`);
  const data = path.join(work, "data");
  const run = path.join(work, "run");
  makeDir(work, 0o700, runAs);
  makeDir(run, 0o700, runAs);
  try {
    await execFileAsync(
      bin.initdb,
      [
        "-D", data,
        "-U", ADMIN_ROLE,
        "--auth-local=peer",
        "--auth-host=reject",
        "-E", "UTF8",
        "--locale=C",
        "--locale-provider=builtin",
        "--builtin-locale=C.UTF-8",
        "--data-checksums",
        // 1 MiB WAL segments: a 6x smaller template to copy, and small archive units.
        "--wal-segsize=1",
        "--no-instructions",
      ],
      { ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}), env: { PATH: process.env["PATH"] ?? "", LC_ALL: "C" } },
    );
    appendFileSync(path.join(data, "postgresql.conf"), POSTGRESQL_CONF);
    writeFileSync(path.join(data, "pg_hba.conf"), PG_HBA);

    const server = new PostgresServer({
      bin,
      dataDir: data,
      socketDir: run,
      logFile: path.join(work, "postgres.log"),
      runAs,
      ccpdOsUser: options.ccpdOsUser,
    });
    await server.start();
    try {
      await setUpRoles(run);
    } finally {
      await server.stop();
    }
    rmSync(path.join(data, "pg_ident.conf"), { force: true });
    writeFileSync(path.join(data, READY_MARKER), `${new Date().toISOString()}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(data, dir);
    return dir;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function setUpRoles(socketDir: string): Promise<void> {
  const client = new pg.Client({ host: socketDir, port: SOCKET_PORT, user: ADMIN_ROLE, database: "postgres" });
  client.on("error", () => undefined); // a dropped connection rejects the pending query instead of crashing ccpd
  await client.connect();
  try {
    // The tenant role: may create databases (several per instance), nothing more.
    await client.query(`CREATE ROLE ${TENANT_ROLE} LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS`);
    await client.query(`CREATE DATABASE "${TENANT_DATABASE}" OWNER ${TENANT_ROLE}`);
    await client.query(`REVOKE ALL ON DATABASE postgres FROM PUBLIC`);
  } finally {
    await client.end();
  }
}
