import { performance } from "node:perf_hooks";
import { PostgresError, type Client, type ExecuteResult } from "@ccp/client";
import type { MigrationFile, SqlFile } from "./files.js";
import { locate, type SourceLocation } from "./source-position.js";
import {
  assertLastAppliedSql,
  CREATE_TABLE_SQL,
  DELETE_SQL,
  FINISH_MEASURED_SQL,
  FINISH_SQL,
  INSERT_SQL,
  LOCK_SQL,
  RESTORE_SQL,
  SELECT_APPLIED_SQL,
  SQLSTATE,
  UNCLAIM_SQL,
  type AppliedRow,
} from "./tracking.js";

/** Indexes of the statements in a migration transaction: lock, table, claim, the file, its duration. */
const APPLY = { lock: 0, table: 1, claim: 2, file: 3, finish: 4 } as const;
/** … and in a rollback transaction: lock, "still the last applied?", the row's DELETE, the down file. */
const REVERT = { lock: 0, assertLast: 1, delete: 2, file: 3 } as const;

export type ApplyOutcome =
  | { readonly name: string; readonly status: "applied"; readonly durationMs: number; readonly noTransaction: boolean }
  /** Another `ccp db migrate` applied it between our reading the table and taking the lock. */
  | { readonly name: string; readonly status: "concurrent" };

/** Postgres rejected a migration (or down) file: nothing of it was committed. */
export interface SqlFileFailure {
  readonly file: SqlFile;
  readonly error: PostgresError;
  /** Where `error.position` points in the file. */
  readonly location: SourceLocation | undefined;
}

/** Postgres rejected the file's SQL. */
export class SqlFileError extends Error {
  readonly failure: SqlFileFailure;
  constructor(file: SqlFile, error: PostgresError) {
    super(`${file.name}: ${error.message}`);
    this.name = "SqlFileError";
    const location = error.position === undefined ? undefined : locate(file.sql, error.position);
    this.failure = { file, error, location };
  }
}

/** The tracking table changed under us in a way this run cannot resolve by itself. */
export class TrackingConflictError extends Error {
  readonly kind: "unfinished" | "not_last";
  readonly migration: string;
  constructor(kind: TrackingConflictError["kind"], migration: string, message: string) {
    super(message);
    this.name = "TrackingConflictError";
    this.kind = kind;
    this.migration = migration;
  }
}

const isPgAt = (err: unknown, index: number): err is PostgresError => err instanceof PostgresError && err.statementIndex === index;

/**
 * Applies and reverts migration files through a database's SQL-over-HTTP
 * gateway. Every file runs in one /transaction request together with its
 * tracking row, under the migrations advisory lock (see tracking.ts).
 */
export class MigrationRunner {
  readonly #db: Client;

  constructor(db: Client) {
    this.#db = db;
  }

  /** The rows of `_ccp_migrations` in applied order; none when the table does not exist yet. */
  async applied(): Promise<AppliedRow[]> {
    try {
      return (await this.#db.query<AppliedRow>(SELECT_APPLIED_SQL)).rows;
    } catch (err) {
      if (err instanceof PostgresError && err.code === SQLSTATE.undefinedTable) return [];
      throw err;
    }
  }

  async #row(name: string): Promise<AppliedRow | undefined> {
    return (await this.applied()).find((r) => r.name === name);
  }

  /** Apply one file. Throws {@link SqlFileError} when Postgres rejects it (nothing of it committed). */
  async apply(file: MigrationFile): Promise<ApplyOutcome> {
    return file.noTransaction ? this.#applyOutsideTransaction(file, true) : this.#applyInTransaction(file);
  }

  async #applyInTransaction(file: MigrationFile): Promise<ApplyOutcome> {
    let results: ExecuteResult[];
    try {
      results = await this.#db.transaction([
        { sql: LOCK_SQL },
        { sql: CREATE_TABLE_SQL },
        { sql: INSERT_SQL, params: [file.name, file.checksum] },
        { sql: file.sql },
        { sql: FINISH_SQL, params: [file.name] },
      ]);
    } catch (err) {
      if (isPgAt(err, APPLY.claim) && err.code === SQLSTATE.uniqueViolation) return { name: file.name, status: "concurrent" };
      if (isPgAt(err, APPLY.file)) throw new SqlFileError(file, err);
      throw err;
    }
    const finished = results[APPLY.finish]?.rows?.[0] as { duration_ms?: number } | undefined;
    return { name: file.name, status: "applied", durationMs: finished?.duration_ms ?? 0, noTransaction: false };
  }

  /**
   * `-- ccp:no-transaction`: claim the file (lock + tracking row, committed),
   * run it alone via /execute, then record its duration; if it fails, drop the claim.
   */
  async #applyOutsideTransaction(file: MigrationFile, retry: boolean): Promise<ApplyOutcome> {
    try {
      await this.#db.transaction([{ sql: LOCK_SQL }, { sql: CREATE_TABLE_SQL }, { sql: INSERT_SQL, params: [file.name, file.checksum] }]);
    } catch (err) {
      if (!(isPgAt(err, APPLY.claim) && err.code === SQLSTATE.uniqueViolation)) throw err;
      const row = await this.#row(file.name);
      if (row && row.duration_ms !== null) return { name: file.name, status: "concurrent" };
      // Claimed by another run that has not finished; or it failed and dropped its claim meanwhile: then try ourselves, once.
      if (!row && retry) return this.#applyOutsideTransaction(file, false);
      throw new TrackingConflictError("unfinished", file.name, `${file.name} is being applied by another run (it runs outside a transaction).`);
    }
    const started = performance.now();
    try {
      await this.#db.execute(file.sql);
    } catch (err) {
      await this.#db.execute(UNCLAIM_SQL, [file.name]).catch(() => undefined); // best effort: the claim is reported as unfinished otherwise
      if (err instanceof PostgresError) throw new SqlFileError(file, err);
      throw err;
    }
    const durationMs = Math.round(performance.now() - started);
    await this.#db.execute(FINISH_MEASURED_SQL, [file.name, durationMs]);
    return { name: file.name, status: "applied", durationMs, noTransaction: true };
  }

  /**
   * Revert one applied migration with its down file, in one transaction with
   * the DELETE of its tracking row; it must still be the last applied one.
   * Resolves to the time taken in ms.
   */
  async revert(row: AppliedRow, down: SqlFile): Promise<number> {
    const started = performance.now();
    const guard = [{ sql: LOCK_SQL }, { sql: assertLastAppliedSql(row.name) }, { sql: DELETE_SQL, params: [row.name] }];
    try {
      if (down.noTransaction) {
        await this.#db.transaction(guard);
        try {
          await this.#db.execute(down.sql);
        } catch (err) {
          await this.#db.execute(RESTORE_SQL, [row.name, row.checksum, row.applied_at, row.duration_ms]).catch(() => undefined);
          if (err instanceof PostgresError) throw new SqlFileError(down, err);
          throw err;
        }
      } else {
        await this.#db.transaction([...guard, { sql: down.sql }]);
      }
    } catch (err) {
      if (isPgAt(err, REVERT.assertLast)) {
        throw new TrackingConflictError("not_last", row.name, `${row.name} is no longer the last applied migration: another migrate or rollback ran meanwhile.`);
      }
      if (isPgAt(err, REVERT.file)) throw new SqlFileError(down, err);
      throw err;
    }
    return Math.round(performance.now() - started);
  }
}
