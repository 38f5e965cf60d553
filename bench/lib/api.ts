import type { RunningServer } from "../../packages/server/dist/index.js";

/** Call ccpd's admin API; throws unless the answer is 201 (POST) or 200. */
export async function api(server: RunningServer, key: string, method: string, route: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${server.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json: unknown = await res.json();
  const expected = method === "POST" ? 201 : 200;
  if (res.status !== expected) throw new Error(`${method} ${route}: HTTP ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Call ccpd's API; throws on any answer of 300 or more (the body, cut at 300 characters, in the message). */
export async function call(server: Pick<RunningServer, "url">, key: string, method: string, route: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${server.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (res.status >= 300) throw new Error(`${method} ${route}: HTTP ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
  return json;
}

/** POST `SELECT 1` to a database's /query with its token; the ms until the whole answer is in (it must be a 200). */
export async function timedSelectOne(server: Pick<RunningServer, "url">, db: { readonly id: string; readonly token: string }): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${server.url}/v1/databases/${db.id}/query`, {
    method: "POST",
    headers: { authorization: `Bearer ${db.token}`, "content-type": "application/json" },
    body: JSON.stringify({ sql: "SELECT 1" }),
  });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`SELECT 1 over HTTP: HTTP ${res.status}`);
  return performance.now() - t0;
}
