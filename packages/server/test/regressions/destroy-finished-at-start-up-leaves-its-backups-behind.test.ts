import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { resolveServerConfig, startServer, type RunningServer } from "../../src/index.js";
import { catalogSql } from "../support/catalog-sql.js";

/**
 * Issue 19, item 2: ccpd wired its "database going away" hook only after
 * start-up reconciliation, so a destroy interrupted by a crash and finished at
 * the next start removed the instance and its row but kept its backups and
 * archived WAL on disk for ever (nothing else ever removes them).
 */
describe("regression: a destroy finished at start-up leaves its backups behind", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "ccp-destroy-at-start-"));
  const start = () =>
    startServer(
      resolveServerConfig({ dataDir: path.join(root, "data"), port: 0, wirePort: 0, backupAt: "off" }, { ...process.env, XDG_CONFIG_HOME: path.join(root, "config"), CCP_LOG_LEVEL: "silent" }),
    );
  let server: RunningServer | undefined;
  after(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("removes the backups of a database whose destroy the restart finished", async () => {
    server = await start();
    const id = (await server.databases.create("doomed")).database.id;
    const backup = await server.backups.create(id);
    const stored = path.join(root, "data", "backups", id);
    assert.ok(existsSync(stored), "the backup is on disk");
    // As left by a ccpd killed right after recording the destroy.
    await catalogSql(server.catalog, async (q) => {
      await q.query("UPDATE ccp.databases SET status = 'destroying' WHERE id = $1", [id]);
      await q.query("INSERT INTO ccp.operations (database_id, kind, state) VALUES ($1, 'destroy', 'running')", [id]);
    });
    await server.close();

    server = await start();
    assert.equal(await server.catalog.databases.find(id), undefined, "the destroy was finished");
    assert.equal(existsSync(stored), false, `left behind: ${existsSync(stored) ? readdirSync(stored).join(", ") : ""} (backup ${backup.id})`);
    const { rows } = await catalogSql(server.catalog, (q) => q.query("SELECT id FROM ccp.backups WHERE database_id = $1", [id]));
    assert.equal(rows.length, 0);
  });
});
