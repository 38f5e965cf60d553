import type { Queryable } from "./sql.js";

export type BackupKind = "manual" | "scheduled";

export interface BackupRow {
  readonly id: string;
  readonly database_id: string;
  readonly kind: BackupKind;
  readonly status: string;
  readonly started_at: Date;
  readonly finished_at: Date | null;
  readonly start_wal: string | null;
  /** bigint: pg hands it over as text. */
  readonly size_bytes: string | null;
}

/** What a finished base backup records. */
export interface TakenBackup {
  readonly finishedAt: Date;
  readonly startLsn: string;
  readonly stopLsn: string;
  readonly startWal: string | null;
  readonly sizeBytes: number;
}

/** `ccp.backups`: base backups, from 'running' to 'ready' (or 'failed'); their files are the store's. */
export class BackupsTable {
  readonly #q: Queryable;

  constructor(q: Queryable) {
    this.#q = q;
  }

  async insertRunning(id: string, databaseId: string, kind: BackupKind, startedAt: Date): Promise<void> {
    await this.#q.query("INSERT INTO ccp.backups (id, database_id, kind, status, started_at) VALUES ($1, $2, $3, 'running', $4)", [id, databaseId, kind, startedAt]);
  }

  async markReady(id: string, t: TakenBackup): Promise<void> {
    await this.#q.query("UPDATE ccp.backups SET status = 'ready', finished_at = $2, start_lsn = $3, stop_lsn = $4, start_wal = $5, size_bytes = $6 WHERE id = $1", [
      id,
      t.finishedAt,
      t.startLsn,
      t.stopLsn,
      t.startWal,
      t.sizeBytes,
    ]);
  }

  async markFailed(id: string, error: string): Promise<void> {
    await this.#q.query("UPDATE ccp.backups SET status = 'failed', error = $2 WHERE id = $1", [id, error]);
  }

  async delete(id: string): Promise<void> {
    await this.#q.query("DELETE FROM ccp.backups WHERE id = $1", [id]);
  }

  /** Delete every backup row of a database; returns their ids (their files are the store's). */
  async deleteOf(databaseId: string): Promise<string[]> {
    const { rows } = await this.#q.query<{ id: string }>("DELETE FROM ccp.backups WHERE database_id = $1 RETURNING id", [databaseId]);
    return rows.map((r) => r.id);
  }

  /** A ready backup by id. */
  async findReady(id: string): Promise<BackupRow | undefined> {
    const { rows } = await this.#q.query<BackupRow>("SELECT * FROM ccp.backups WHERE id = $1 AND status = 'ready'", [id]);
    return rows[0];
  }

  /** A database's ready backups, newest first. */
  async readyOf(databaseId: string): Promise<BackupRow[]> {
    const { rows } = await this.#q.query<BackupRow>("SELECT * FROM ccp.backups WHERE database_id = $1 AND status = 'ready' ORDER BY started_at DESC", [databaseId]);
    return rows;
  }

  /** Every ready backup, by database, newest first (retention). */
  async allReady(): Promise<BackupRow[]> {
    const { rows } = await this.#q.query<BackupRow>("SELECT * FROM ccp.backups WHERE status = 'ready' ORDER BY database_id, finished_at DESC");
    return rows;
  }

  /** The newest ready backup finished at or before `time` (point-in-time restore starts from it). */
  async readyBefore(databaseId: string, time: Date): Promise<BackupRow | undefined> {
    const { rows } = await this.#q.query<BackupRow>(
      "SELECT * FROM ccp.backups WHERE database_id = $1 AND status = 'ready' AND finished_at <= $2 ORDER BY finished_at DESC LIMIT 1",
      [databaseId, time],
    );
    return rows[0];
  }

  /** The newest ready backup whose copy ends at or before `lsn`. */
  async readyBeforeLsn(databaseId: string, lsn: string): Promise<BackupRow | undefined> {
    const { rows } = await this.#q.query<BackupRow>(
      "SELECT * FROM ccp.backups WHERE database_id = $1 AND status = 'ready' AND stop_lsn <= $2::pg_lsn ORDER BY stop_lsn DESC LIMIT 1",
      [databaseId, lsn],
    );
    return rows[0];
  }

  /** The lowest stop LSN of a database's ready backups. */
  async oldestStopLsn(databaseId: string): Promise<string | undefined> {
    const { rows } = await this.#q.query<{ lsn: string }>(
      "SELECT stop_lsn::text AS lsn FROM ccp.backups WHERE database_id = $1 AND status = 'ready' ORDER BY stop_lsn LIMIT 1",
      [databaseId],
    );
    return rows[0]?.lsn;
  }

  async oldestReady(databaseId: string): Promise<BackupRow | undefined> {
    const { rows } = await this.#q.query<BackupRow>("SELECT * FROM ccp.backups WHERE database_id = $1 AND status = 'ready' ORDER BY finished_at LIMIT 1", [databaseId]);
    return rows[0];
  }

  /** When the database's newest ready backup was taken (`ccp db status`). */
  async lastReadyAt(databaseId: string): Promise<Date | null> {
    const { rows } = await this.#q.query<{ at: Date | null }>(
      "SELECT max(coalesce(finished_at, started_at)) AS at FROM ccp.backups WHERE database_id = $1 AND status = 'ready'",
      [databaseId],
    );
    return rows[0]?.at ?? null;
  }

  /**
   * The databases a daily backup due at `due` still has to take, oldest first:
   * ready ones, and suspended ones written since their last backup (one with no
   * writes since is already covered and is not woken), without a scheduled
   * backup since `due`.
   */
  async dueForScheduled(due: Date): Promise<string[]> {
    const { rows } = await this.#q.query<{ id: string }>(
      `SELECT d.id FROM ccp.databases d
        WHERE (d.status = 'ready'
               OR (d.status = 'suspended'
                   AND NOT EXISTS (SELECT 1 FROM ccp.backups b WHERE b.database_id = d.id AND b.status = 'ready'
                                      AND b.started_at >= coalesce(d.last_write_at, '-infinity'))))
          AND NOT EXISTS (SELECT 1 FROM ccp.backups b WHERE b.database_id = d.id AND b.kind = 'scheduled' AND b.status IN ('ready', 'running') AND b.started_at >= $1)
        ORDER BY d.created_at`,
      [due],
    );
    return rows.map((r) => r.id);
  }
}
