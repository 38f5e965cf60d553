/** The `/v1` API as the console uses it: the session cookie, plus the CSRF token on every state-changing request. */

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly hint: string | undefined;
  readonly body: Record<string, unknown>;
  constructor(status: number, body: Record<string, unknown>) {
    super(typeof body["message"] === "string" ? body["message"] : `HTTP ${status}`);
    this.status = status;
    this.code = typeof body["code"] === "string" ? body["code"] : "error";
    this.hint = typeof body["hint"] === "string" ? body["hint"] : undefined;
    this.body = body;
  }
}

let csrfToken: string | undefined;
const unauthorizedListeners = new Set<() => void>();

/** Called when any request finds the session gone (401): the app shows the sign-in page. */
export function onUnauthorized(fn: () => void): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["x-csrf-token"] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body), credentials: "same-origin", ...(signal ? { signal } : {}) });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    throw new ApiError(0, { code: "unreachable", message: "ccpd did not answer.", hint: "Is ccpd still running? Reload the page once it is." });
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = { error: { message: text.slice(0, 200) } };
  }
  if (!res.ok) {
    const err = new ApiError(res.status, ((json as { error?: Record<string, unknown> }).error ?? {}) as Record<string, unknown>);
    if (res.status === 401 && path !== "/v1/session") for (const fn of unauthorizedListeners) fn();
    throw err;
  }
  return json as T;
}

export interface SessionInfo {
  csrf_token: string;
  expires_at: string;
}

export async function signIn(key: string): Promise<SessionInfo> {
  const s = await api<SessionInfo>("POST", "/v1/session", { key });
  csrfToken = s.csrf_token;
  return s;
}

/** The session of the cookie, after a reload; undefined when not signed in. */
export async function resumeSession(): Promise<SessionInfo | undefined> {
  try {
    const s = await api<SessionInfo>("GET", "/v1/session");
    csrfToken = s.csrf_token;
    return s;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return undefined;
    throw err;
  }
}

export async function signOut(): Promise<void> {
  await api("DELETE", "/v1/session");
  csrfToken = undefined;
}

export interface Database {
  id: string;
  name: string;
  status: string;
  host: string;
  database: string;
  user: string;
  pg_version: string;
  runtime: string;
  restarts: number;
  created_at: string;
  last_error?: string;
  databases?: string[];
  /** Idle time before ccpd suspends it (5m, never). */
  suspend_after?: string;
  last_active_at?: string | null;
  /** Set on a branch: the database it was copied from, when, at which WAL position, and when ccpd destroys it. */
  parent_id?: string;
  branched_at?: string;
  branch_lsn?: string;
  expires_at?: string;
}

export interface DatabaseStatus {
  id: string;
  name: string;
  state: string;
  host: string;
  owner: string;
  pg_version: string;
  size_bytes: number | null;
  connections: number | null;
  max_connections: number | null;
  started_at: string | null;
  uptime_seconds: number | null;
  last_backup_at: string | null;
  databases: string[] | null;
}

export interface Backup {
  id: string;
  database_id: string;
  kind: string;
  status: string;
  created_at: string;
  finished_at?: string | null;
  size_bytes?: number | null;
}

export interface SqlResult {
  command: string | null;
  row_count: number | null;
  fields: { name: string; type_oid: number }[];
  rows: unknown[][];
}

export interface SqlResponse {
  results: SqlResult[];
  duration_ms: number;
}

const enc = encodeURIComponent;

export const databasesApi = {
  list: () => api<{ databases: Database[] }>("GET", "/v1/databases").then((r) => r.databases),
  get: (ref: string, secrets = false) => api<{ database: Database; database_url?: string }>("GET", `/v1/databases/${enc(ref)}${secrets ? "?show_secrets=true" : ""}`),
  status: (ref: string) => api<{ status: DatabaseStatus }>("GET", `/v1/databases/${enc(ref)}/status`).then((r) => r.status),
  create: (body: { name: string; owner?: string; password?: string; suspend_after?: string }) =>
    api<{ database: Database; token: string; password: string; database_url: string }>("POST", "/v1/databases", body),
  /** force: destroy a parent even though it has branches (they stay, standalone); without it such a destroy answers 409. */
  destroy: (ref: string, force = false) => api<{ database: Database }>("DELETE", `/v1/databases/${enc(ref)}${force ? "?force=true" : ""}`),
  suspend: (ref: string) => api<{ database: Database }>("POST", `/v1/databases/${enc(ref)}/suspend`),
  wake: (ref: string) => api<{ database: Database }>("POST", `/v1/databases/${enc(ref)}/wake`),
  rotateToken: (ref: string) => api<{ database: Database; token: string }>("POST", `/v1/databases/${enc(ref)}/token`),
  resetPassword: (ref: string, password: string) => api<{ database: Database; database_url: string }>("POST", `/v1/databases/${enc(ref)}/password`, { password }),
  sql: (ref: string, body: { sql: string; params?: unknown[]; database?: string; raw_text?: boolean }, signal?: AbortSignal) =>
    api<SqlResponse>("POST", `/v1/databases/${enc(ref)}/sql`, body, signal),
};

export const branchesApi = {
  list: (ref: string) => api<{ databases: Database[] }>("GET", `/v1/databases/${enc(ref)}/branches`).then((r) => r.databases),
  create: (ref: string, body: { name: string; at?: string; ttl?: string; expires_at?: string }) =>
    api<{ database: Database; token: string; password: string; database_url: string }>("POST", `/v1/databases/${enc(ref)}/branches`, body),
  reset: (ref: string) => api<{ database: Database }>("POST", `/v1/databases/${enc(ref)}/reset-from-parent`),
};

export const backupsApi = {
  list: (ref: string) => api<{ backups: Backup[] }>("GET", `/v1/databases/${enc(ref)}/backups`).then((r) => r.backups),
  create: (ref: string) => api<{ backup: Backup }>("POST", `/v1/databases/${enc(ref)}/backups`).then((r) => r.backup),
  remove: (ref: string, id: string) => api<{ backup: Backup }>("DELETE", `/v1/databases/${enc(ref)}/backups/${enc(id)}`),
  restore: (ref: string, id: string) => api<{ backup: Backup }>("POST", `/v1/databases/${enc(ref)}/backups/${enc(id)}/restore`),
  verify: (ref: string, id: string) => api<{ backup: Backup; files: number; bytes: number }>("POST", `/v1/databases/${enc(ref)}/backups/${enc(id)}/verify`),
  pitr: (ref: string, time: string, name: string) => api<{ database?: Database }>("POST", `/v1/databases/${enc(ref)}/restore`, { time, name }),
};

/** Run SQL and return the last result (what the grid shows). */
export async function query(ref: string, sql: string, params: unknown[] = [], rawText = false): Promise<SqlResult> {
  const r = await databasesApi.sql(ref, { sql, ...(params.length ? { params } : {}), raw_text: rawText });
  const last = r.results[r.results.length - 1];
  if (!last) throw new ApiError(400, { message: "The SQL had no statement." });
  return last;
}

/** A result's rows as objects (for the console's own introspection queries). */
export function objects<T>(r: SqlResult): T[] {
  return r.rows.map((row) => Object.fromEntries(r.fields.map((f, i) => [f.name, row[i]])) as T);
}

export interface LogEntry {
  time: string;
  level: string;
  source: "postgres" | "ccp";
  message: string;
  database?: string;
  user?: string;
  code?: string;
  detail?: string;
  hint?: string;
  statement?: string;
  event?: string;
}

export interface Insight {
  query: string;
  database: string;
  user: string;
  calls: number;
  total_ms: number;
  mean_ms: number;
  rows: number;
  cache_hit_rate: number | null;
}

/** GET /metrics (Prometheus text); undefined when ccpd runs with --no-metrics. */
export async function metricsText(): Promise<string | undefined> {
  const res = await fetch("/metrics", { credentials: "same-origin" });
  if (res.status === 404) return undefined;
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: Record<string, unknown> };
    const err = new ApiError(res.status, body.error ?? {});
    if (res.status === 401) for (const fn of unauthorizedListeners) fn();
    throw err;
  }
  return res.text();
}

export const observabilityApi = {
  logs: (ref: string, since: string, level: string) =>
    api<{ entries: LogEntry[] }>("GET", `/v1/databases/${enc(ref)}/logs?since=${enc(since)}&level=${enc(level)}&limit=300`).then((r) => r.entries),
  insights: (ref: string, sort: string) => api<{ statements: Insight[] }>("GET", `/v1/databases/${enc(ref)}/insights?sort=${enc(sort)}&limit=25`).then((r) => r.statements),
  resetInsights: (ref: string) => api<{ reset: boolean }>("POST", `/v1/databases/${enc(ref)}/insights/reset`),
};
