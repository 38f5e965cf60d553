/**
 * The SQL of the tracking table `_ccp_migrations` and of the statements that
 * wrap each migration. Every migration transaction starts by taking one fixed
 * transaction-scoped advisory lock, so concurrent `ccp db migrate` runs
 * serialise on it (also the very first one, which creates the table); the
 * tracking row is inserted before the file runs, without ON CONFLICT, so a run
 * that lost the race gets a unique violation instead of applying the file twice.
 */

/** Table name, schema-qualified so a migration's own `SET search_path` cannot hide it. */
export const TRACKING_TABLE = "public._ccp_migrations";

/** pg_advisory_xact_lock key: the bytes of "ccp_mig". */
export const MIGRATION_LOCK_KEY = 0x636370_5f6d6967n;

export const LOCK_SQL = `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;

export const CREATE_TABLE_SQL = `CREATE TABLE IF NOT EXISTS ${TRACKING_TABLE} (
  name        text PRIMARY KEY,
  checksum    text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now(),
  duration_ms integer
)`;

/** The claim. applied_at is when the file started running (after the lock wait), so rollback can go by applied order. */
export const INSERT_SQL = `INSERT INTO ${TRACKING_TABLE} (name, checksum, applied_at) VALUES ($1, $2, clock_timestamp())`;

/** Last statement of a migration transaction: its duration, measured by Postgres. */
export const FINISH_SQL = `UPDATE ${TRACKING_TABLE}
   SET duration_ms = floor(extract(epoch FROM clock_timestamp() - applied_at) * 1000)::integer
 WHERE name = $1
RETURNING duration_ms`;

/** For a no-transaction migration that ran: its duration as measured by the CLI. */
export const FINISH_MEASURED_SQL = `UPDATE ${TRACKING_TABLE} SET duration_ms = $2 WHERE name = $1 AND duration_ms IS NULL`;

/** Release the claim of a no-transaction migration that failed. */
export const UNCLAIM_SQL = `DELETE FROM ${TRACKING_TABLE} WHERE name = $1 AND duration_ms IS NULL`;

export const SELECT_APPLIED_SQL = `SELECT name, checksum, applied_at, duration_ms FROM ${TRACKING_TABLE} ORDER BY applied_at, name`;

export const DELETE_SQL = `DELETE FROM ${TRACKING_TABLE} WHERE name = $1`;

/** Put back the row of a no-transaction rollback whose down file failed. */
export const RESTORE_SQL = `INSERT INTO ${TRACKING_TABLE} (name, checksum, applied_at, duration_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING`;

/** Migration file names are `[0-9]+_[A-Za-z0-9_-]+.sql`, so they can be SQL literals without escaping; check anyway. */
function literal(name: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`unexpected migration name ${JSON.stringify(name)}`);
  return `'${name}'`;
}

/**
 * Fails unless `name` is still the most recently applied migration. Rollback
 * runs it under the lock, so a concurrent migrate or rollback between reading
 * the table and reverting cannot make it revert the wrong one (or one twice).
 */
export function assertLastAppliedSql(name: string): string {
  return `DO $ccp$
BEGIN
  IF (SELECT name FROM ${TRACKING_TABLE} ORDER BY applied_at DESC, name DESC LIMIT 1) IS DISTINCT FROM ${literal(name)} THEN
    RAISE EXCEPTION 'migration % is no longer the last applied one', ${literal(name)};
  END IF;
END
$ccp$`;
}

/** A row of `_ccp_migrations` as the gateway returns it. */
export interface AppliedRow {
  readonly name: string;
  readonly checksum: string;
  /** ISO 8601. */
  readonly applied_at: string;
  /** Null while a no-transaction migration is running (or if its run was interrupted). */
  readonly duration_ms: number | null;
}

/** SQLSTATEs that matter here. */
export const SQLSTATE = {
  uniqueViolation: "23505",
  undefinedTable: "42P01",
  activeTransaction: "25001",
} as const;
