import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { catalogSql } from "./support/catalog-sql.js";
import type { RunningServer } from "../src/index.js";
import { newDatabaseId } from "../src/ids.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

describe("reconcile after a ccpd killed mid-operation", () => {
  let t: TestServer;
  let server: RunningServer;

  before(async () => {
    t = await startTestServer("reconcile");
    server = t.server;
  });
  after(async () => {
    await t?.dispose();
  });

  const instanceDir = (id: string) => path.join(t.root, "data", "instances", id);
  const opState = async (id: string) =>
    (await catalogSql(server.catalog, (q) => q.query<{ kind: string; state: string }>("SELECT kind, state FROM ccp.operations WHERE database_id = $1 ORDER BY id", [id]))).rows.map(
      (r) => `${r.kind}:${r.state}`,
    );
  const rowExists = async (id: string) => (await server.catalog.databases.find(id)) !== undefined;

  it("undoes an interrupted create, finishes an interrupted destroy, removes orphans, keeps the rest", async () => {
    const { catalog, driver, databases } = server;
    const kept = (await databases.create("kept-db")).database.id;
    const doomed = (await databases.create("doomed-db")).database.id;

    // A create that got as far as a running server, then ccpd died.
    const halfCreated = newDatabaseId();
    await catalogSql(catalog, async (q) => {
      await q.query(
        `INSERT INTO ccp.databases (id, name, status, runtime, pg_version, owner_role, database_name, token_hash)
         VALUES ($1, 'half-created', 'creating', 'process', $2, 'clusterbase', 'default', 'x')`,
        [halfCreated, driver.pgVersion],
      );
      await q.query("INSERT INTO ccp.operations (database_id, kind, state) VALUES ($1, 'create', 'running')", [halfCreated]);
    });
    await driver.create(halfCreated);
    await driver.start(halfCreated);

    // A destroy recorded but not carried out.
    await catalogSql(catalog, async (q) => {
      await q.query("UPDATE ccp.databases SET status = 'destroying' WHERE id = $1", [doomed]);
      await q.query("INSERT INTO ccp.operations (database_id, kind, state) VALUES ($1, 'destroy', 'running')", [doomed]);
    });

    // An instance directory the catalog never heard of.
    const orphan = newDatabaseId();
    await driver.create(orphan);

    await databases.reconcile();

    assert.equal(await rowExists(halfCreated), false);
    assert.equal(existsSync(instanceDir(halfCreated)), false);
    assert.equal(await driver.state(halfCreated), "absent");
    assert.deepEqual(await opState(halfCreated), ["create:failed"]);

    assert.equal(await rowExists(doomed), false);
    assert.equal(existsSync(instanceDir(doomed)), false);
    assert.deepEqual(await opState(doomed), ["create:done", "destroy:done"]);

    assert.equal(existsSync(instanceDir(orphan)), false);

    assert.equal(await rowExists(kept), true);
    assert.equal(await driver.state(kept), "running");
    assert.equal((await databases.get(kept)).status, "ready");
  });

  it("leaves nothing behind when a create fails half-way", async () => {
    const { driver, databases, catalog } = server;
    const before = await driver.list();
    // Inject a failure after the storage was provisioned.
    const original = driver.start.bind(driver);
    driver.start = async () => {
      throw new Error("injected start failure");
    };
    try {
      await assert.rejects(databases.create("fails-to-start"), /nothing was left behind/);
    } finally {
      driver.start = original;
    }
    assert.deepEqual(await driver.list(), before);
    assert.equal(await catalog.databases.find("fails-to-start"), undefined);
    const ops = await catalogSql(catalog, (q) => q.query<{ state: string }>("SELECT o.state FROM ccp.operations o WHERE o.kind = 'create' ORDER BY id DESC LIMIT 1"));
    assert.equal(ops.rows[0]?.state, "failed");
  });
});
