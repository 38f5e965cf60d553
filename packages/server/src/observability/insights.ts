import type pg from "pg";
import { withAdmin } from "../databases/admin-connection.js";
import { CcpError } from "../errors.js";
import type { InstanceEndpoint } from "../runtime/driver.js";
import type { InsightSort } from "./params.js";

/** One normalised statement of `ccp db insights` (pg_stat_statements, constants replaced by $n). */
export interface StatementInsight {
  readonly query: string;
  /** The Postgres database inside the instance, and the role that ran it. */
  readonly database: string;
  readonly user: string;
  readonly calls: number;
  readonly total_ms: number;
  readonly mean_ms: number;
  readonly rows: number;
  /** shared_blks_hit / (hit + read); null when it touched no shared block. */
  readonly cache_hit_rate: number | null;
}

export { INSIGHT_SORTS, type InsightSort } from "./params.js";

const ORDER: Record<InsightSort, string> = { total: "s.total_exec_time", mean: "s.mean_exec_time", calls: "s.calls" };

/**
 * pg_stat_statements lives in ccp's own `postgres` database of each instance,
 * created there by the admin role (it is not a trusted extension): the
 * tenant's databases stay free of it, and the tenant role cannot read it
 * (no CONNECT on `postgres`). The view shows the statements of every database
 * of the instance; ccp's own (admin role, `postgres` database) are left out,
 * so what is listed is exactly the tenant's. Each database is its own server,
 * so another database's statements are never in it.
 */
async function ensureExtension(client: pg.Client): Promise<void> {
  try {
    await client.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  } catch (err) {
    if ((err as { code?: string }).code === "55000") throw notLoaded(err);
    throw err;
  }
}

function notLoaded(cause: unknown): CcpError {
  return new CcpError("conflict", "pg_stat_statements is not loaded in this instance yet: it started before ccpd loaded it.", {
    hint: "Restart ccpd (or the database) once; every instance starts with it from then on.",
    cause,
  });
}


export async function statementInsights(endpoint: InstanceEndpoint, sort: InsightSort, limit: number): Promise<StatementInsight[]> {
  return withAdmin(endpoint, "postgres", async (client) => {
    await ensureExtension(client);
    try {
      const { rows } = await client.query<StatementInsight>(
        `SELECT s.query, d.datname AS database, r.rolname AS "user", s.calls::float8 AS calls,
                s.total_exec_time AS total_ms, s.mean_exec_time AS mean_ms, s.rows::float8 AS rows,
                CASE WHEN s.shared_blks_hit + s.shared_blks_read = 0 THEN NULL
                     ELSE round(s.shared_blks_hit::numeric / (s.shared_blks_hit + s.shared_blks_read), 4)::float8 END AS cache_hit_rate
           FROM pg_stat_statements s
           JOIN pg_database d ON d.oid = s.dbid
           JOIN pg_roles r ON r.oid = s.userid
          WHERE r.rolname <> $1 AND d.datname <> 'postgres'
          ORDER BY ${ORDER[sort]} DESC, s.queryid
          LIMIT $2`,
        [endpoint.admin.user, limit],
      );
      return rows;
    } catch (err) {
      if ((err as { code?: string }).code === "55000") throw notLoaded(err);
      throw err;
    }
  });
}

/** Start the statistics afresh (`ccp db insights --reset`). */
export async function resetInsights(endpoint: InstanceEndpoint): Promise<void> {
  await withAdmin(endpoint, "postgres", async (client) => {
    await ensureExtension(client);
    await client.query("SELECT pg_stat_statements_reset()");
  });
}
