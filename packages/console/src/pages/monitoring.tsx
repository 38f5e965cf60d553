import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { metricsText, observabilityApi, type Database, type Insight, type LogEntry } from "../api.js";
import { ErrorBox, formatBytes, Spinner } from "../components/ui.js";
import { lifecycleOf, parsePrometheus, rates, readingOf, type Lifecycle, type Reading } from "../lib/prometheus.js";

const EVERY_MS = 5_000;
const KEEP = 60;

interface Point {
  at: number;
  connections: number;
  tps: number | null;
  cacheHitRate: number | null;
  sizeBytes: number;
  lifecycle: Lifecycle;
}

/** A small line chart of the points read since the panel opened. */
function Sparkline(props: { values: (number | null)[]; label: string }) {
  const vals = props.values.map((v) => v ?? NaN);
  const finite = vals.filter((v) => Number.isFinite(v));
  if (finite.length < 2) return <svg class="spark" viewBox="0 0 120 32" role="img" aria-label={`${props.label}: not enough readings yet`} />;
  const max = Math.max(...finite);
  const min = Math.min(0, ...finite);
  const span = max - min || 1;
  const step = 120 / Math.max(1, vals.length - 1);
  const points = vals.map((v, i) => (Number.isFinite(v) ? `${(i * step).toFixed(1)},${(30 - ((v - min) / span) * 28).toFixed(1)}` : "")).filter(Boolean);
  return (
    <svg class="spark" viewBox="0 0 120 32" role="img" aria-label={`${props.label} over the last ${vals.length} readings`}>
      <polyline points={points.join(" ")} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}

export function MonitoringPanel(props: { db: Database }) {
  const { db } = props;
  const [points, setPoints] = useState<Point[]>([]);
  const [metricsOff, setMetricsOff] = useState(false);
  const [error, setError] = useState<unknown>();
  const last = useRef<Reading | undefined>(undefined);

  useEffect(() => {
    let stopped = false;
    const read = async () => {
      try {
        const text = await metricsText();
        if (stopped) return;
        if (text === undefined) {
          setMetricsOff(true);
          return;
        }
        const samples = parsePrometheus(text);
        const reading = readingOf(samples, db.id, Date.now());
        const r = rates(last.current, reading);
        last.current = reading;
        const lifecycle = lifecycleOf(samples);
        setPoints((p) => [...p, { at: reading.at, connections: reading.connections, sizeBytes: reading.sizeBytes, lifecycle, ...r }].slice(-KEEP));
        setError(undefined);
      } catch (err) {
        if (!stopped) setError(err);
      }
    };
    void read();
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") void read();
    }, EVERY_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [db.id]);

  const cur = points[points.length - 1];
  const figure = (label: string, value: string, series: (number | null)[]) => (
    <div class="figure" data-testid={`figure-${label}`}>
      <div class="muted small-text">{label}</div>
      <div class="figure-value">{value}</div>
      <Sparkline values={series} label={label} />
    </div>
  );
  return (
    <div class="panel">
      <ErrorBox error={error} />
      <h2>Figures</h2>
      {metricsOff ? (
        <p class="muted">ccpd runs with --no-metrics: no figures to show.</p>
      ) : !cur ? (
        <Spinner label="Reading /metrics…" />
      ) : (
        <>
          <div class="figures">
            {figure("Connections", String(cur.connections), points.map((p) => p.connections))}
            {figure("Transactions/s", cur.tps === null ? "—" : cur.tps.toFixed(1), points.map((p) => p.tps))}
            {figure("Cache hit rate", cur.cacheHitRate === null ? "—" : `${(cur.cacheHitRate * 100).toFixed(1)} %`, points.map((p) => p.cacheHitRate))}
            {figure("Size", formatBytes(cur.sizeBytes), points.map((p) => p.sizeBytes))}
          </div>
          <h3>Sleep and wake (all databases, since ccpd started)</h3>
          <div class="figures">
            {figure("Wakes", String(cur.lifecycle.wakes), points.map((p) => p.lifecycle.wakes))}
            {figure("Suspends", String(cur.lifecycle.suspends), points.map((p) => p.lifecycle.suspends))}
            {figure(
              "Wake time",
              cur.lifecycle.meanWakeSeconds === null
                ? "—"
                : `${cur.lifecycle.meanWakeSeconds.toFixed(2)} s mean${cur.lifecycle.slowestWakeUnderSeconds === null ? "" : `, all under ${cur.lifecycle.slowestWakeUnderSeconds} s`}`,
              points.map((p) => p.lifecycle.meanWakeSeconds),
            )}
          </div>
          <p class="muted small-text">Read from ccpd's /metrics every {EVERY_MS / 1000} s while this page is open (ccpd refreshes a database's figures at most every 5 s).</p>
        </>
      )}
      <Insights db={db} />
      <Logs db={db} />
    </div>
  );
}

function Insights(props: { db: Database }) {
  const [sort, setSort] = useState("total");
  const [rows, setRows] = useState<Insight[] | undefined>();
  const [error, setError] = useState<unknown>();
  const load = useCallback(async () => {
    try {
      setRows(await observabilityApi.insights(props.db.id, sort));
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  }, [props.db.id, sort]);
  useEffect(() => {
    void load();
  }, [load]);
  return (
    <section>
      <div class="page-head">
        <h2>Query insights</h2>
        <div class="toolbar">
          <label class="inline">
            Sort by
            <select value={sort} onChange={(e) => setSort((e.target as HTMLSelectElement).value)}>
              <option value="total">total time</option>
              <option value="mean">mean time</option>
              <option value="calls">calls</option>
            </select>
          </label>
          <button type="button" class="small" onClick={() => void load()}>
            Refresh
          </button>
          <button
            type="button"
            class="small"
            onClick={() =>
              void observabilityApi.resetInsights(props.db.id).then(load, setError)
            }
          >
            Reset statistics
          </button>
        </div>
      </div>
      <ErrorBox error={error} />
      {!rows && !error && <Spinner />}
      {rows?.length === 0 && <p class="muted">No statements recorded yet.</p>}
      {rows && rows.length > 0 && (
        <div class="table-wrap">
          <table class="list" data-testid="insights">
            <thead>
              <tr>
                <th scope="col">Statement</th>
                <th scope="col">Calls</th>
                <th scope="col">Total ms</th>
                <th scope="col">Mean ms</th>
                <th scope="col">Rows</th>
                <th scope="col">Cache hits</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r, i) => (
                <tr key={i}>
                  <td>
                    <code>{r.query.length > 300 ? `${r.query.slice(0, 300)}…` : r.query}</code>
                    <div class="muted small-text">
                      {r.database} · {r.user}
                    </div>
                  </td>
                  <td data-label="Calls">{r.calls}</td>
                  <td data-label="Total ms">{r.total_ms.toFixed(1)}</td>
                  <td data-label="Mean ms">{r.mean_ms.toFixed(2)}</td>
                  <td data-label="Rows">{r.rows}</td>
                  <td data-label="Cache hits">{r.cache_hit_rate === null ? "—" : `${(r.cache_hit_rate * 100).toFixed(1)} %`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Logs(props: { db: Database }) {
  const [since, setSince] = useState("1h");
  const [level, setLevel] = useState("log");
  const [entries, setEntries] = useState<LogEntry[] | undefined>();
  const [error, setError] = useState<unknown>();
  const load = useCallback(async () => {
    try {
      setEntries(await observabilityApi.logs(props.db.id, since, level));
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  }, [props.db.id, since, level]);
  useEffect(() => {
    void load();
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") void load();
    }, EVERY_MS);
    return () => clearInterval(timer);
  }, [load]);
  return (
    <section>
      <div class="page-head">
        <h2>Log</h2>
        <div class="toolbar">
          <label class="inline">
            Since
            <select value={since} onChange={(e) => setSince((e.target as HTMLSelectElement).value)}>
              {["15m", "1h", "6h", "24h", "7d"].map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          <label class="inline">
            Level
            <select value={level} onChange={(e) => setLevel((e.target as HTMLSelectElement).value)}>
              {["debug", "info", "log", "notice", "warning", "error"].map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
        </div>
      </div>
      <ErrorBox error={error} />
      {!entries && !error && <Spinner />}
      {entries?.length === 0 && <p class="muted">Nothing logged in that time at that level.</p>}
      {entries && entries.length > 0 && (
        <ol class="log" data-testid="log" aria-label="Log entries, oldest first">
          {entries.map((e, i) => (
            <li key={i} class={`log-${e.level.toLowerCase()}`}>
              <span class="muted">{new Date(e.time).toLocaleTimeString()}</span> <span class="badge">{e.source === "ccp" ? (e.event ?? "ccp") : e.level}</span> {e.message}
              {e.statement && <div class="muted small-text">statement: {e.statement}</div>}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
