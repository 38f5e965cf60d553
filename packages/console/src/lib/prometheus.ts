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
