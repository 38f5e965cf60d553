import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { aptInstall, isRoot } from "../../../bench/lib/apt.js";
import type { RunningServer } from "../../server/src/index.js";
import { startTestServer, type TestServer } from "../../server/test/support/test-server.js";

const CHROMIUM = "/usr/bin/chromium";
/** Screenshots of each main page (gitignored): packages/console/test-artifacts/. */
const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/", import.meta.url));
const CONSOLE_INDEX = fileURLToPath(new URL("../dist/index.html", import.meta.url));

/** Debian's Chromium, installed when absent (CI runs as root on this kind of machine); no browser download. */
async function ensureChromium(): Promise<void> {
  if (existsSync(CHROMIUM)) return;
  if (!isRoot()) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium) to run the console's browser tests.`);
  await aptInstall("chromium");
}

describe("web console in Chromium against a real ccpd", { timeout: 240_000 }, () => {
  let t: TestServer;
  let server: RunningServer;
  let adminKey: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  /** The admin API with the Bearer key (what the CLI uses), to check what the console did. */
  async function adminSql(sql: string): Promise<unknown[][]> {
    const res = await fetch(`${server.url}/v1/databases/shop/sql`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ sql }),
    });
    const body = (await res.json()) as { results: { rows: unknown[][] }[] };
    assert.equal(res.status, 200, JSON.stringify(body));
    return body.results[body.results.length - 1]?.rows ?? [];
  }
  const shot = async (name: string) => {
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  };
  async function atWidth(width: number, name: string): Promise<void> {
    await page.setViewportSize({ width, height: 900 });
    await shot(`${name}-${width}`);
    await page.setViewportSize({ width: 1280, height: 900 });
  }
  /** Replace the editor's text (insertText: no key events, so completion cannot swallow keys) and put the cursor at its end. */
  async function typeSql(text: string): Promise<void> {
    await page.locator(".cm-content").click();
    await page.keyboard.press("ControlOrMeta+a");
    await page.keyboard.press("Delete");
    await page.keyboard.insertText(text);
    await page.keyboard.press("Escape"); // close a completion popup, if one opened
  }

  /** Poll a condition in the test (the console's CSP forbids Playwright's string predicates in the page). */
  async function until(check: () => Promise<boolean>, what: string): Promise<void> {
    for (let i = 0; !(await check()); i++) {
      assert.ok(i < 100, `timed out waiting until ${what}`);
      await sleep(100);
    }
  }

  before(async () => {
    assert.ok(existsSync(CONSOLE_INDEX), `${CONSOLE_INDEX} is missing: run npm run build first`);
    await ensureChromium();
    mkdirSync(ARTIFACTS, { recursive: true });
    t = await startTestServer("console");
    server = t.server;
    adminKey = t.adminKey;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ], // launch() gives every run a fresh, empty user data dir of its own

    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
  });
  after(async () => {
    await browser?.close();
    await t?.dispose();
  });

  it("signs in with the admin key into an HttpOnly, SameSite=Strict session; a wrong key is refused", async () => {
    await page.goto(`${server.url}/`);
    await page.getByLabel("Admin API key").fill("not-the-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "not an admin API key" }).waitFor();
    await shot("sign-in");
    await page.getByLabel("Admin API key").fill(adminKey);
    await page.keyboard.press("Enter");
    await page.getByText("No databases yet.").waitFor();
    assert.equal(new URL(page.url()).pathname, "/databases");
    const cookie = (await context.cookies()).find((c) => c.name === "ccp_session");
    assert.ok(cookie, "session cookie set");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Strict");
    assert.equal(await page.evaluate("document.cookie"), "", "the session id is out of the page's reach");
    // The cookie alone cannot change anything: a state-changing request needs the CSRF token.
    const status = await page.evaluate(async () => (await fetch("/v1/databases", { method: "POST", headers: { "content-type": "application/json" }, body: '{"name":"forged"}' })).status);
    assert.equal(status, 403);
  });

  it("creates a database, shows its token once and lists it as ready", async () => {
    await page.getByRole("button", { name: "New database" }).click();
    await page.getByLabel("Name", { exact: true }).fill("shop");
    await page.getByRole("button", { name: "Create database" }).click();
    const token = await page.getByTestId("new-token").textContent();
    assert.match(token ?? "", /\S{20,}/);
    const row = page.getByRole("row").filter({ hasText: "shop" });
    await row.getByText("ready").waitFor();
    await atWidth(1280, "databases");
    await atWidth(390, "databases");
    await row.getByRole("link", { name: "shop" }).click();
    await page.getByRole("button", { name: "Reveal DATABASE_URL" }).click();
    assert.match((await page.getByTestId("database-url").textContent()) ?? "", /^postgres(ql)?:\/\/[^:]+:[^@]+@/);
    await atWidth(1280, "database");
    await atWidth(390, "database");
  });

  it("runs CREATE TABLE and INSERT … RETURNING in the SQL editor and shows the rows with their types", async () => {
    await page.getByRole("link", { name: "SQL editor" }).click();
    await page.locator(".cm-content").waitFor();
    await typeSql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric)");
    await page.keyboard.press("ControlOrMeta+Enter");
    await page.getByTestId("result-summary").filter({ hasText: /^CREATE$/ }).waitFor();
    // Completion knows the new table and, after it, its columns.
    await typeSql("");
    await page.keyboard.type("SELECT * FROM ite");
    // Clicked, not Enter: CodeMirror ignores Enter for a moment after the list opens (interactionDelay).
    await page.locator(".cm-completionLabel", { hasText: /^items$/ }).click();
    await page.keyboard.type(" WHERE pri");
    await page.locator(".cm-completionLabel", { hasText: /^price$/ }).click();
    assert.equal(await page.locator(".cm-content").innerText(), "SELECT * FROM items WHERE price");
    // Two statements, cursor on the second: only the INSERT runs (the table exists already).
    await typeSql("SELECT 'not this one';\nINSERT INTO items VALUES (1, 'apple', 1.5), (2, 'pear', NULL), (3, 'plum', 3) RETURNING id, name, price");
    await page.keyboard.press("ControlOrMeta+Enter");
    await page.getByTestId("result-summary").filter({ hasText: "3 rows" }).waitFor();
    const grid = page.getByTestId("result-grid");
    assert.deepEqual(await grid.locator("th").allInnerTexts(), ["id\ninteger", "name\ntext", "price\nnumeric"]);
    assert.deepEqual(await grid.locator("tbody tr").first().locator("td").allInnerTexts(), ["1", "apple", "1.5"]);
    assert.equal(await grid.locator("tbody tr").nth(1).locator("td").nth(2).innerText(), "NULL");
    assert.deepEqual(await adminSql("SELECT count(*)::int FROM items"), [[3]]);
    const [csv] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "CSV" }).click()]);
    assert.match(csv.suggestedFilename(), /^shop-.*\.csv$/);
    assert.equal(readFileSync((await csv.path()) as string, "utf8"), "id,name,price\r\n1,apple,1.5\r\n2,pear,\r\n3,plum,3\r\n");
    const [json] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "JSON" }).click()]);
    assert.deepEqual(JSON.parse(readFileSync((await json.path()) as string, "utf8")), [
      { id: 1, name: "apple", price: "1.5" },
      { id: 2, name: "pear", price: null },
      { id: 3, name: "plum", price: "3" },
    ]);
    await atWidth(1280, "sql");
    await atWidth(390, "sql");
  });

  it("marks a syntax error at Postgres' position in the editor", async () => {
    await typeSql("SELECT 1;\nSELECT name\n  FROMM items");
    await page.keyboard.press("ControlOrMeta+Enter");
    await page.getByRole("alert").filter({ hasText: "syntax error" }).waitFor();
    assert.equal(await page.locator(".cm-error-mark").innerText(), "items");
    await page.getByText("At line 3, column 9").waitFor();
    await shot("sql-error");
  });

  it("cancels a running pg_sleep(30) on the server", async () => {
    await typeSql("SELECT pg_sleep(30)");
    await page.keyboard.press("ControlOrMeta+Enter");
    await page.getByText("Running…").waitFor();
    // The statement is really running in Postgres before we cancel it.
    for (let i = 0; (await adminSql("SELECT count(*)::int FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"))[0]?.[0] !== 1; i++) {
      assert.ok(i < 100, "pg_sleep never showed up in pg_stat_activity");
      await sleep(100);
    }
    await page.keyboard.press("Escape"); // the editor has the focus; the Cancel button does the same
    await page.getByRole("alert").filter({ hasText: "Cancelled" }).waitFor();
    for (let i = 0; (await adminSql("SELECT count(*)::int FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"))[0]?.[0] !== 0; i++) {
      assert.ok(i < 100, "pg_sleep still running 10 s after the cancel");
      await sleep(100);
    }
    await page.getByText("History (").click();
    await page.locator(".history").getByText("cancelled").first().waitFor();
  });

  it("browses rows with sorting and a filter, and shows the exact UPDATE before running it", async () => {
    await page.getByRole("link", { name: "Tables" }).click();
    const grid = page.getByTestId("rows-grid");
    await grid.getByRole("cell", { name: "apple" }).waitFor();
    await grid.getByRole("button", { name: "name" }).click(); // ascending
    await grid.getByRole("button", { name: "name" }).click(); // descending
    await grid.locator("tbody tr").first().locator("td").nth(2).filter({ hasText: /^plum$/ }).waitFor(); // column 1 holds the Edit buttons
    await page.getByLabel("Filter operator").selectOption("contains");
    await page.getByLabel("Filter column").selectOption("name");
    await page.getByLabel("Filter value").fill("pp");
    await page.getByRole("button", { name: "Apply" }).click();
    await until(async () => (await grid.locator("tbody tr").count()) === 1, "the filter leaves one row");
    await shot("tables-rows");
    await page.getByRole("button", { name: "Edit row 1" }).click();
    await grid.getByLabel("name").fill("green apple");
    await page.getByRole("button", { name: "Review SQL" }).click();
    assert.equal(await page.getByTestId("edit-sql").innerText(), `UPDATE "public"."items" SET "name" = 'green apple' WHERE "id" = '1' RETURNING *;`);
    assert.deepEqual(await adminSql("SELECT name FROM items WHERE id = 1"), [["apple"]], "nothing runs before it is confirmed");
    await shot("tables-edit");
    await page.getByRole("button", { name: "Run this SQL" }).click();
    await page.getByText("Row updated.").waitFor();
    assert.deepEqual(await adminSql("SELECT name FROM items WHERE id = 1"), [["green apple"]]);
    await page.getByRole("tab", { name: "Structure" }).click();
    await page.getByText("CREATE UNIQUE INDEX items_pkey ON public.items USING btree (id)").waitFor();
    await page.getByText("PRIMARY KEY (id)").waitFor();
    await atWidth(1280, "tables-structure");
    await atWidth(390, "tables-structure");
  });

  it("takes a backup and restores it after confirmation", async () => {
    await page.getByRole("link", { name: "Backups" }).click();
    await page.getByText("No backups yet").waitFor();
    await page.getByRole("button", { name: "Take backup now" }).click();
    await page.getByText(/Backup bkp-[0-9a-f]{8} taken\./).waitFor({ timeout: 60_000 });
    await adminSql("DELETE FROM items");
    await page.getByRole("button", { name: "Restore…" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByRole("button", { name: "Restore" }).isDisabled();
    assert.equal(await dialog.getByRole("button", { name: "Restore" }).isDisabled(), true, "restore waits for the typed name");
    await dialog.getByLabel("Confirmation").fill("shop");
    await dialog.getByRole("button", { name: "Restore" }).click();
    await page.getByText(/Restored shop from bkp-/).waitFor({ timeout: 60_000 });
    assert.deepEqual(await adminSql("SELECT id, name FROM items ORDER BY id"), [
      [1, "green apple"],
      [2, "pear"],
      [3, "plum"],
    ]);
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByText(/Backup bkp-[0-9a-f]{8} verified: \d+ files/).waitFor({ timeout: 60_000 });
    await atWidth(1280, "backups");
    await atWidth(390, "backups");
  });

  it("restores to a point in time into a new database", async () => {
    await adminSql("INSERT INTO items VALUES (4, 'fig', 2)");
    await page.getByRole("button", { name: "Set the time to now" }).click();
    await page.getByLabel("Name of the new database").fill("shop-then");
    await page.getByRole("button", { name: "Restore into a new database" }).click();
    await page.getByRole("heading", { name: "Databases / shop-then" }).waitFor({ timeout: 90_000 });
    const res = await fetch(`${server.url}/v1/databases/shop-then/sql`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ sql: "SELECT id FROM items ORDER BY id" }),
    });
    assert.deepEqual(((await res.json()) as { results: { rows: unknown[][] }[] }).results[0]?.rows, [[1], [2], [3], [4]]);
  });

  it("destroys a database only once its name is typed, from the keyboard", async () => {
    await page.getByRole("link", { name: "Databases", exact: true }).first().click();
    await page.getByRole("button", { name: "Destroy shop-then" }).focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog");
    assert.equal(await dialog.getByRole("button", { name: "Destroy database" }).isDisabled(), true);
    await page.keyboard.type("shop-the"); // the confirmation field has the focus
    assert.equal(await dialog.getByRole("button", { name: "Destroy database" }).isDisabled(), true);
    await page.keyboard.type("n");
    await page.keyboard.press("Enter");
    await page.getByRole("row").filter({ hasText: "shop-then" }).waitFor({ state: "detached", timeout: 30_000 });
    assert.equal((await fetch(`${server.url}/v1/databases/shop-then`, { headers: { authorization: `Bearer ${adminKey}` } })).status, 404);
    await page.getByRole("row").filter({ hasText: "shop" }).waitFor();
  });

  it("suspends and wakes a database from the list", async () => {
    await page.getByRole("link", { name: "Databases", exact: true }).first().click();
    const row = page.getByRole("row").filter({ hasText: "shop" });
    await row.getByRole("button", { name: "Suspend shop" }).click();
    await row.getByText("suspended", { exact: true }).waitFor({ timeout: 60_000 });
    // Showing the list (and the database's page) must not wake it: their status calls would.
    await page.reload();
    await row.getByText("suspended", { exact: true }).waitFor();
    await row.getByRole("link", { name: "shop" }).click();
    await page.getByText("Suspended: its Postgres is stopped").waitFor();
    const info = await fetch(`${server.url}/v1/databases/shop`, { headers: { authorization: `Bearer ${adminKey}` } });
    assert.equal(((await info.json()) as { database: { status: string } }).database.status, "suspended");
    await page.goBack();
    await row.getByRole("button", { name: "Wake shop" }).click();
    await row.getByText("ready", { exact: true }).waitFor({ timeout: 60_000 });
    assert.deepEqual(await adminSql("SELECT count(*)::int FROM items"), [[4]]);
  });

  it("shows monitoring: figures from /metrics, query insights and the log", async () => {
    await page.getByRole("link", { name: "shop", exact: true }).click();
    await page.getByRole("link", { name: "Monitoring" }).click();
    await page.getByTestId("figure-Connections").waitFor();
    assert.match(await page.getByTestId("figure-Size").innerText(), /\d+(\.\d)? (KiB|MiB|GiB)/);
    await page.getByTestId("insights").getByText("items").first().waitFor(); // the console's own statements on items
    await page.getByTestId("log").waitFor();
    // shop was woken by the test before: ccpd's wake counter shows it.
    assert.match(await page.getByTestId("figure-Wakes").innerText(), /\b[1-9]\d*\b/);
    await page.getByTestId("figure-Wake time").getByText(/s mean/).waitFor();
    await atWidth(1280, "monitoring");
    await atWidth(390, "monitoring");
  });

  it("creates a branch, lists it with its parent, queries the parent's rows on it, resets it, and names it when the parent is destroyed", async () => {
    await page.getByRole("link", { name: "Branches" }).click();
    await page.getByText("No branches yet.").waitFor();
    await page.getByLabel("Branch name").fill("shop-pr");
    await page.getByRole("combobox", { name: "Expires" }).selectOption("ttl");
    await page.getByRole("textbox", { name: "Lifetime" }).fill("2h");
    await page.getByRole("button", { name: "Create branch" }).click();
    await page.getByTestId("branch-token").waitFor({ timeout: 60_000 });
    await page.getByTestId("branches").getByRole("link", { name: "shop-pr" }).waitFor();
    await atWidth(1280, "branches");
    await atWidth(390, "branches");
    await page.getByRole("link", { name: "Databases", exact: true }).first().click();
    const row = page.getByRole("row").filter({ hasText: "shop-pr" });
    assert.match(await row.getByTestId("branch-of").innerText(), /^branch of shop, expires /);
    await row.getByRole("link", { name: "SQL" }).click();
    await page.getByRole("heading", { name: "Databases / shop-pr" }).waitFor();
    await typeSql("SELECT count(*)::int AS n FROM items");
    await page.keyboard.press("ControlOrMeta+Enter");
    await page.getByTestId("result-grid").locator("tbody td").filter({ hasText: /^4$/ }).waitFor();
    // The parent moves on; a reset gives the branch the parent's current data.
    await adminSql("INSERT INTO items VALUES (5, 'kiwi', 1)");
    await page.getByRole("link", { name: "Branches" }).click();
    await page.getByText("Branch of").first().waitFor();
    await page.getByRole("button", { name: "Reset from parent…" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("shop's current data").waitFor();
    await dialog.getByLabel("Confirmation").fill("shop-pr");
    await dialog.getByRole("button", { name: "Reset branch" }).click();
    await page.getByText("shop-pr now holds shop's current data.").waitFor({ timeout: 60_000 });
    await page.getByRole("link", { name: "SQL editor" }).click();
    await typeSql("SELECT count(*)::int AS n FROM items");
    await page.keyboard.press("ControlOrMeta+Enter");
    await page.getByTestId("result-grid").locator("tbody td").filter({ hasText: /^5$/ }).waitFor();
    // Destroying the parent names its branch and, once confirmed, destroys it with force (the API answers 409 without); the branch stays.
    await page.getByRole("link", { name: "Databases", exact: true }).first().click();
    await page.getByRole("button", { name: "Destroy shop", exact: true }).click();
    assert.match(await page.getByTestId("destroy-branches").innerText(), /It has a branch: shop-pr\./);
    const shopRow = page.getByRole("row").filter({ has: page.getByRole("link", { name: "shop", exact: true }) });
    assert.equal(await shopRow.count(), 1);
    const confirm = page.getByRole("dialog");
    await confirm.getByLabel("Confirmation").fill("shop");
    await confirm.getByRole("button", { name: "Destroy database" }).click();
    await shopRow.waitFor({ state: "detached", timeout: 30_000 });
    const get = (ref: string) => fetch(`${server.url}/v1/databases/${ref}`, { headers: { authorization: `Bearer ${adminKey}` } }).then((r) => r.status);
    assert.equal(await get("shop"), 404);
    assert.equal(await get("shop-pr"), 200);
    await page.getByRole("row").filter({ hasText: "shop-pr" }).waitFor();
  });

  it("signs out; the pages and the old cookie are refused afterwards", async () => {
    const cookie = (await context.cookies()).find((c) => c.name === "ccp_session")?.value;
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Admin API key").waitFor();
    await page.goto(`${server.url}/databases/shop/sql`);
    await page.getByLabel("Admin API key").waitFor();
    assert.equal(await page.locator(".cm-content").count(), 0);
    assert.equal(await page.evaluate(async () => (await fetch("/v1/databases")).status), 401);
    // Replaying the old session id does not work either: the session is gone server-side.
    const replay = await fetch(`${server.url}/v1/databases`, { headers: { cookie: `ccp_session=${cookie}` } });
    assert.equal(replay.status, 401);
  });
});
