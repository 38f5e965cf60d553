import type { Catalog } from "../catalog/catalog.js";

/**
 * Platform events of a database, recorded in the catalog (`ccp.instance_events`)
 * and shown in the same stream as its Postgres log (`ccp db logs`).
 * `restart` is recorded by the catalog itself (recordRestart).
 */
export type PlatformEventKind =
  | "created"
  | "restart"
  | "suspended"
  | "woken"
  | "backup_taken"
  | "backup_failed"
  | "restored"
  | "password_changed"
  | "token_rotated";

/** How each kind reads in the log, and its level. */
export const EVENT_TEXT: Readonly<Record<string, { level: "info" | "warning" | "error"; message: (d: Record<string, unknown>) => string }>> = {
  created: { level: "info", message: (d) => (d["from"] ? `database created (point-in-time restore of ${String(d["from"])})` : "database created") },
  restart: { level: "warning", message: (d) => `postgres exited (code ${String(d["exit_code"])}, signal ${String(d["signal"])}); restarted by ccpd` },
  suspended: { level: "info", message: (d) => `database suspended (${String(d["reason"] ?? "idle")})` },
  woken: { level: "info", message: (d) => (typeof d["seconds"] === "number" ? `database woken in ${Math.round(d["seconds"] * 1000)} ms` : "database woken") },
  backup_taken: { level: "info", message: (d) => `backup ${String(d["backup_id"])} taken (${String(d["kind"])})` },
  backup_failed: { level: "error", message: (d) => `backup ${String(d["backup_id"])} failed: ${String(d["error"])}` },
  restored: { level: "warning", message: (d) => `data restored from backup ${String(d["backup_id"])}` },
  password_changed: { level: "info", message: () => "wire password of the owner role changed" },
  token_rotated: { level: "info", message: () => "HTTP token rotated; the previous one stopped working" },
};

/** Records events without making the operation that caused them fail or wait for the catalog. */
export class PlatformEvents {
  readonly #catalog: Catalog;
  readonly #log: { warn(msg: string): void };

  constructor(catalog: Catalog, log: { warn(msg: string): void }) {
    this.#catalog = catalog;
    this.#log = log;
  }

  /** `detail` must never hold a secret (passwords, tokens): it is shown to anyone who reads the logs. */
  record(databaseId: string, kind: PlatformEventKind, detail: Record<string, unknown> = {}): Promise<void> {
    return this.#catalog.events.record(databaseId, kind, detail).catch((err: Error) => this.#log.warn(`recording event ${kind} of ${databaseId} failed: ${err.message}`));
  }
}
