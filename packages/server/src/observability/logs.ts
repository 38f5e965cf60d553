import { closeSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Catalog, EventRow } from "../catalog/catalog.js";
import { pruneLogs } from "../runtime/process/process-driver.js";
import { EVENT_TEXT } from "./events.js";
import { LOG_LEVELS, type LogLevel } from "./params.js";

export { LOG_LEVELS, parseLevel, parseSince, type LogLevel } from "./params.js";

/** One line of `ccp db logs`: a Postgres log record (jsonlog) or a platform event of ccpd. */
export interface LogEntry {
  /** RFC 3339, UTC. */
  readonly time: string;
  readonly level: LogLevel;
  readonly source: "postgres" | "ccp";
  readonly message: string;
  /** Postgres: the Postgres database and role of the session, SQLSTATE, and the failing statement (log_min_error_statement). */
  readonly database?: string;
  readonly user?: string;
  readonly code?: string;
  readonly detail?: string;
  readonly hint?: string;
  readonly statement?: string;
  readonly backend_type?: string;
  readonly pid?: number;
  /** ccp: the event's kind (created, restart, backup_taken, …). */
  readonly event?: string;
}

/** LOG is Postgres's routine server message (checkpoints, start-up): ranked with info. */
const RANK: Record<LogLevel, number> = { debug: 0, info: 1, log: 1, notice: 2, warning: 3, error: 4, fatal: 5, panic: 6 };

function levelOf(severity: string | undefined): LogLevel {
  const s = (severity ?? "").toLowerCase();
  if (s.startsWith("debug")) return "debug";
  return (LOG_LEVELS as readonly string[]).includes(s) ? (s as LogLevel) : "log";
}

interface JsonlogRecord {
  timestamp?: string;
  error_severity?: string;
  message?: string;
  dbname?: string;
  user?: string;
  state_code?: string;
  detail?: string;
  hint?: string;
  statement?: string;
  backend_type?: string;
  pid?: number;
}

/** "2026-12-01 14:42:46.123 UTC" (log_timezone is UTC on every instance) → RFC 3339. */
function isoTime(ts: string | undefined): string | undefined {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) (?:UTC|GMT)$/.exec(ts ?? "");
  return m ? `${m[1]}T${m[2]}Z` : undefined;
}

function fromJsonlog(line: string): LogEntry | undefined {
  let r: JsonlogRecord;
  try {
    r = JSON.parse(line) as JsonlogRecord;
  } catch {
    return undefined;
  }
  const time = isoTime(r.timestamp);
  if (!time) return undefined;
  return {
    time,
    level: levelOf(r.error_severity),
    source: "postgres",
    message: r.message ?? "",
    ...(r.dbname === undefined ? {} : { database: r.dbname }),
    ...(r.user === undefined ? {} : { user: r.user }),
    ...(r.state_code === undefined || r.state_code === "00000" ? {} : { code: r.state_code }),
    ...(r.detail === undefined ? {} : { detail: r.detail }),
    ...(r.hint === undefined ? {} : { hint: r.hint }),
    ...(r.statement === undefined ? {} : { statement: r.statement }),
    ...(r.backend_type === undefined ? {} : { backend_type: r.backend_type }),
    ...(r.pid === undefined ? {} : { pid: r.pid }),
  };
}

function fromEvent(e: EventRow): LogEntry {
  const text = EVENT_TEXT[e.kind];
  return {
    time: e.at.toISOString(),
    level: text?.level ?? "info",
    source: "ccp",
    message: text ? text.message(e.detail) : e.kind,
    event: e.kind,
  };
}

export interface LogQuery {
  readonly since: Date;
  readonly level: LogLevel;
  /** At most this many entries, the newest (default 1000). */
  readonly limit: number;
}

/**
 * Reads a database's log: the JSON files its Postgres writes (one directory
 * per instance, so one database never sees another's lines) merged by time
 * with its platform events from the catalog. A reader keeps where it stopped
 * in each file, so following reads only what was appended since.
 */
export class LogReader {
  readonly #dir: string;
  readonly #catalog: Catalog;
  readonly #databaseId: string;
  readonly #query: LogQuery;
  /** File name → bytes consumed (up to the last complete line). */
  readonly #offsets = new Map<string, number>();
  #lastEventId = "0";

  constructor(options: { dir: string; catalog: Catalog; databaseId: string; query: LogQuery }) {
    this.#dir = options.dir;
    this.#catalog = options.catalog;
    this.#databaseId = options.databaseId;
    this.#query = options.query;
  }

  /** Everything since `query.since` (the newest `limit`), oldest first. */
  async initial(): Promise<LogEntry[]> {
    pruneLogs(this.#dir);
    const entries = [...this.#readFiles(this.#query.since.getTime()), ...(await this.#readEvents())];
    return sortByTime(entries).slice(-this.#query.limit);
  }

  /** What was appended since the last call, oldest first. */
  async next(): Promise<LogEntry[]> {
    return sortByTime([...this.#readFiles(0), ...(await this.#readEvents())]);
  }

  #readFiles(sinceMs: number): LogEntry[] {
    let names: string[];
    try {
      names = readdirSync(this.#dir)
        .filter((n) => n.startsWith("postgresql-") && n.endsWith(".json"))
        .sort();
    } catch {
      return []; // no log directory yet (never started since logs were turned on)
    }
    const out: LogEntry[] = [];
    const minRank = RANK[this.#query.level];
    const sinceIso = new Date(sinceMs).toISOString();
    for (const name of names) {
      const file = path.join(this.#dir, name);
      let size: number;
      let mtime: number;
      try {
        ({ size, mtimeMs: mtime } = statSync(file));
      } catch {
        continue; // pruned meanwhile
      }
      const from = this.#offsets.get(name) ?? 0;
      // A file last written before `since` holds nothing newer.
      if (from === 0 && mtime < sinceMs) {
        this.#offsets.set(name, size);
        continue;
      }
      if (size <= from) continue;
      const text = readRange(file, from, size);
      const end = text.lastIndexOf("\n");
      if (end < 0) continue;
      this.#offsets.set(name, from + Buffer.byteLength(text.slice(0, end + 1)));
      for (const line of text.slice(0, end).split("\n")) {
        const e = line ? fromJsonlog(line) : undefined;
        if (e && RANK[e.level] >= minRank && e.time >= sinceIso) out.push(e);
      }
    }
    return out;
  }

  async #readEvents(): Promise<LogEntry[]> {
    const rows = await this.#catalog.events.since(this.#databaseId, this.#query.since, this.#lastEventId);
    const last = rows[rows.length - 1];
    if (last) this.#lastEventId = last.id;
    const minRank = RANK[this.#query.level];
    return rows.map(fromEvent).filter((e) => RANK[e.level] >= minRank);
  }
}

function readRange(file: string, from: number, to: number): string {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(to - from);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, from + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

function sortByTime(entries: LogEntry[]): LogEntry[] {
  return entries.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
}

/** Follow a reader: `onEntries` gets each new batch until `signal` aborts. */
export async function follow(reader: LogReader, signal: AbortSignal, onEntries: (entries: LogEntry[]) => void, everyMs = 250): Promise<void> {
  while (!signal.aborted) {
    await sleep(everyMs, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) return;
    const entries = await reader.next();
    if (entries.length > 0) onEntries(entries);
  }
}
