export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of a Prometheus text exposition (comments and malformed lines skipped). */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_x, c: string) => (c === "n" ? "\n" : c));
    const value = Number(m[3]);
    if (!Number.isNaN(value) || m[3] === "NaN") out.push({ name: m[1] as string, labels, value });
  }
  return out;
}

/** One reading of a database's figures, summed over the Postgres databases inside it. */
export interface Reading {
  readonly at: number;
  readonly up: boolean;
  readonly connections: number;
  readonly transactions: number;
  readonly blocksHit: number;
  readonly blocksRead: number;
  readonly sizeBytes: number;
}

export function readingOf(samples: readonly Sample[], databaseId: string, at: number): Reading {
  const sum = (name: string) => samples.filter((s) => s.name === name && s.labels["database_id"] === databaseId).reduce((n, s) => n + s.value, 0);
  return {
    at,
    up: sum("pg_up") > 0,
    connections: sum("pg_stat_database_numbackends"),
    transactions: sum("pg_stat_database_xact_commit") + sum("pg_stat_database_xact_rollback"),
    blocksHit: sum("pg_stat_database_blks_hit"),
    blocksRead: sum("pg_stat_database_blks_read"),
    sizeBytes: sum("pg_database_size_bytes"),
  };
}

/** Transactions per second and cache hit rate between two readings (null where they cannot be told). */
export function rates(prev: Reading | undefined, cur: Reading): { tps: number | null; cacheHitRate: number | null } {
  if (!prev || cur.at <= prev.at || cur.transactions < prev.transactions) {
    const total = cur.blocksHit + cur.blocksRead;
    return { tps: null, cacheHitRate: total > 0 ? cur.blocksHit / total : null };
  }
  const seconds = (cur.at - prev.at) / 1000;
  const hit = cur.blocksHit - prev.blocksHit;
  const read = cur.blocksRead - prev.blocksRead;
  const total = hit + read;
  const all = cur.blocksHit + cur.blocksRead;
  return { tps: (cur.transactions - prev.transactions) / seconds, cacheHitRate: total > 0 ? hit / total : all > 0 ? cur.blocksHit / all : null };
}

/** Sleep and wake since ccpd started (its counters are ccpd-wide, not per database). */
export interface Lifecycle {
  readonly wakes: number;
  readonly suspends: number;
  /** Mean time from a wake's start to accepting connections; null before the first wake. */
  readonly meanWakeSeconds: number | null;
  /** The slowest wake's histogram bucket bound ("under N s"); null before the first wake. */
  readonly slowestWakeUnderSeconds: number | null;
}

export function lifecycleOf(samples: readonly Sample[]): Lifecycle {
  const one = (name: string) => samples.filter((s) => s.name === name).reduce((n, s) => n + s.value, 0);
  const wakes = one("ccpd_instance_wakes_total");
  const count = one("ccpd_instance_wake_duration_seconds_count");
  const sum = one("ccpd_instance_wake_duration_seconds_sum");
  // Cumulative buckets: the slowest wake is under the smallest bound that holds them all.
  const bounds = samples
    .filter((s) => s.name === "ccpd_instance_wake_duration_seconds_bucket" && s.labels["le"] !== "+Inf" && s.labels["le"] !== undefined)
    .map((s) => ({ le: Number(s.labels["le"]), n: s.value }))
    .filter((b) => Number.isFinite(b.le))
    .sort((a, b) => a.le - b.le);
  const full = count > 0 ? bounds.find((b) => b.n >= count) : undefined;
  return {
    wakes,
    suspends: one("ccpd_instance_suspends_total"),
    meanWakeSeconds: count > 0 ? sum / count : null,
    slowestWakeUnderSeconds: full ? full.le : null,
  };
}
