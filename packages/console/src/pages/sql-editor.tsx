import type { CompletionContext, CompletionResult } from "@codemirror/autocomplete";
import { PostgreSQL, sql as sqlLanguage } from "@codemirror/lang-sql";
import { Compartment, EditorSelection, Prec, StateEffect, StateField, type Extension } from "@codemirror/state";
import { Decoration, EditorView, keymap, type DecorationSet } from "@codemirror/view";
import { basicSetup } from "codemirror";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, databasesApi, objects, query, type Database, type SqlResponse, type SqlResult } from "../api.js";
import { ErrorBox } from "../components/ui.js";
import { toCsv, toJson } from "../lib/csv.js";
import { columnsInScope } from "../lib/completion.js";
import { typeName } from "../lib/pg-types.js";
import { errorOffset, statementAt } from "../lib/statements.js";
import { completionSchema, loadTables, type TableInfo } from "../schema.js";

/** Where the last error points: a mark in the editor until the text changes. */
const setErrorMark = StateEffect.define<{ from: number; to: number } | null>();
const errorMarkField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(marks, tr) {
    let next = marks.map(tr.changes);
    if (tr.docChanged) next = Decoration.none;
    for (const e of tr.effects) {
      if (e.is(setErrorMark)) next = e.value ? Decoration.set([Decoration.mark({ class: "cm-error-mark", attributes: { title: "Postgres reported the error here" } }).range(e.value.from, e.value.to)]) : Decoration.none;
    }
    return next;
  },
  provide: (f) => EditorView.decorations.from(f),
});

interface HistoryEntry {
  sql: string;
  at: string;
  ok: boolean;
  summary: string;
}

const HISTORY_MAX = 100;
const SHOWN_ROWS = 1000;
const historyKey = (id: string) => `ccp.sql-history.${id}`;
const draftKey = (id: string) => `ccp.sql-draft.${id}`;

function readHistory(id: string): HistoryEntry[] {
  try {
    return JSON.parse(localStorage.getItem(historyKey(id)) ?? "[]") as HistoryEntry[];
  } catch {
    return [];
  }
}

interface Outcome {
  response: SqlResponse;
  roundTripMs: number;
  text: string;
}

function summarize(r: SqlResult): string {
  if (r.fields.length > 0) return `${r.row_count ?? r.rows.length} row${(r.row_count ?? r.rows.length) === 1 ? "" : "s"}`;
  return r.command ? `${r.command}${r.row_count !== null && r.command !== "CREATE" ? ` ${r.row_count}` : ""}` : "OK";
}

/** Bare column names of the tables the statement names (lang-sql completes `table.` itself). */
function columnCompletion(ctx: CompletionContext, tables: readonly TableInfo[]): CompletionResult | null {
  const word = ctx.matchBefore(/[\w$]+/);
  if (!word && !ctx.explicit) return null;
  const from = word?.from ?? ctx.pos;
  if (ctx.state.sliceDoc(from - 1, from) === ".") return null;
  const options = columnsInScope(ctx.state.doc.toString(), tables).map((o) => ({ ...o, type: "property", boost: 1 }));
  return options.length ? { from, options, validFor: /^[\w$]*$/ } : null;
}

function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function cellText(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

export function SqlEditor(props: { db: Database }) {
  const { db } = props;
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const language = useRef(new Compartment());
  const tablesRef = useRef<TableInfo[]>([]);
  const runRef = useRef<() => void>(() => undefined);
  const runningRef = useRef<AbortController | undefined>(undefined);
  const [running, setRunning] = useState<AbortController | undefined>();
  const [outcome, setOutcome] = useState<Outcome | undefined>();
  const [error, setError] = useState<{ err: unknown; where?: string } | undefined>();
  const [history, setHistory] = useState<HistoryEntry[]>(() => readHistory(db.id));
  const [types, setTypes] = useState<Map<number, string>>(new Map());
  const [database, setDatabase] = useState(db.database);

  const languageFor = (schema: Record<string, Record<string, string[]>>): Extension =>
    sqlLanguage({ dialect: PostgreSQL, schema, defaultSchema: "public", upperCaseKeywords: true });

  useEffect(() => {
    const v = new EditorView({
      parent: host.current as HTMLDivElement,
      doc: localStorage.getItem(draftKey(db.id)) ?? "SELECT now();\n",
      extensions: [
        Prec.highest(
          keymap.of([
            { key: "Mod-Enter", run: () => (runRef.current(), true) },
            // Esc cancels a running statement (and otherwise closes completion, as usual).
            { key: "Escape", run: () => (runningRef.current ? (runningRef.current.abort(), true) : false) },
          ]),
        ),
        basicSetup,
        language.current.of(languageFor({})),
        PostgreSQL.language.data.of({ autocomplete: (ctx: CompletionContext) => columnCompletion(ctx, tablesRef.current) }),
        errorMarkField,
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ "aria-label": "SQL editor. Ctrl+Enter or Cmd+Enter runs the statement at the cursor, or the selection." }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) localStorage.setItem(draftKey(db.id), u.state.doc.toString());
        }),
      ],
    });
    view.current = v;
    v.focus();
    refreshSchema();
    return () => {
      view.current = null;
      v.destroy();
    };
  }, [db.id]);

  /** Table and column names for completion, again after DDL; the editor works without them. */
  const refreshSchema = () => {
    loadTables(db.id)
      .then((tables) => {
        tablesRef.current = tables;
        view.current?.dispatch({ effects: language.current.reconfigure(languageFor(completionSchema(tables))) });
      })
      .catch(() => undefined);
  };

  const learnTypes = async (r: SqlResult) => {
    const unknown = r.fields.map((f) => f.type_oid).filter((oid) => typeName(oid, types).startsWith("oid "));
    if (unknown.length === 0) return;
    try {
      const found = objects<{ oid: number; name: string }>(await query(db.id, "SELECT oid::int AS oid, format_type(oid, NULL) AS name FROM pg_type WHERE oid = ANY($1::oid[])", [`{${unknown.join(",")}}`]));
      setTypes((prev) => new Map([...prev, ...found.map((t) => [t.oid, t.name] as [number, string])]));
    } catch {
      // Names are a nicety: the grid shows the OID instead.
    }
  };

  const run = async () => {
    const v = view.current;
    if (!v || running) return;
    const sel = v.state.selection.main;
    const doc = v.state.doc.toString();
    let text: string;
    let base: number;
    if (!sel.empty) {
      text = v.state.sliceDoc(sel.from, sel.to);
      base = sel.from;
    } else {
      const stmt = statementAt(doc, sel.head);
      if (!stmt) return;
      text = stmt.text;
      base = stmt.from;
    }
    const controller = new AbortController();
    setRunning(controller);
    setError(undefined);
    v.dispatch({ effects: setErrorMark.of(null) });
    const started = performance.now();
    let entry: HistoryEntry;
    try {
      const response = await databasesApi.sql(db.id, { sql: text, ...(database !== db.database ? { database } : {}) }, controller.signal);
      const last = response.results[response.results.length - 1];
      setOutcome({ response, roundTripMs: performance.now() - started, text });
      if (last) void learnTypes(last);
      if (response.results.some((r) => r.command === "CREATE" || r.command === "ALTER" || r.command === "DROP")) refreshSchema();
      entry = { sql: text, at: new Date().toISOString(), ok: true, summary: last ? summarize(last) : "OK" };
    } catch (err) {
      let where: string | undefined;
      if ((err as Error).name === "AbortError") {
        setError({ err: new Error("Cancelled: ccpd cancelled the statement on the server.") });
        entry = { sql: text, at: new Date().toISOString(), ok: false, summary: "cancelled" };
      } else {
        const position = err instanceof ApiError && typeof err.body["position"] === "number" ? err.body["position"] : undefined;
        if (position !== undefined) {
          const from = errorOffset(text, position, base);
          const word = /^[\w$]+|^./s.exec(doc.slice(from))?.[0] ?? "";
          const to = Math.min(doc.length, from + Math.max(1, word.length));
          const line = v.state.doc.lineAt(from);
          where = `line ${line.number}, column ${from - line.from + 1}`;
          v.dispatch({ effects: setErrorMark.of(from < to ? { from, to } : null), selection: EditorSelection.cursor(from), scrollIntoView: true });
        }
        setError({ err, ...(where ? { where } : {}) });
        entry = { sql: text, at: new Date().toISOString(), ok: false, summary: err instanceof Error ? err.message : "error" };
      }
    } finally {
      setRunning(undefined);
    }
    setHistory((prev) => {
      const next = [entry, ...prev.filter((h) => h.sql !== entry.sql)].slice(0, HISTORY_MAX);
      localStorage.setItem(historyKey(db.id), JSON.stringify(next));
      return next;
    });
  };
  runRef.current = () => void run();
  runningRef.current = running;

  const last = outcome?.response.results[outcome.response.results.length - 1];
  const fileBase = `${db.name}-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  return (
    <div class="sql">
      <div class="toolbar">
        <button type="button" class="primary" onClick={() => void run()} disabled={!!running} title="Ctrl+Enter / Cmd+Enter">
          Run <kbd>Ctrl+Enter</kbd>
        </button>
        <button type="button" onClick={() => running?.abort()} disabled={!running} title="Esc in the editor">
          Cancel
        </button>
        {(db.databases?.length ?? 0) > 1 && (
          <label class="inline">
            Database
            <select value={database} onChange={(e) => setDatabase((e.target as HTMLSelectElement).value)}>
              {db.databases?.map((d) => (
                <option key={d}>{d}</option>
              ))}
            </select>
          </label>
        )}
        <span class="muted small-text">Runs the selection, or the statement at the cursor; Esc cancels.</span>
      </div>
      <div class="editor" ref={host} />
      <div class="result" aria-live="polite">
        {running && <p role="status">Running… (Cancel stops it on the server)</p>}
        {error && (
          <div class="sql-error">
            <ErrorBox error={error.err} />
            {error.where && <p class="muted small-text">At {error.where} (marked in the editor).</p>}
            {error.err instanceof ApiError && typeof error.err.body["detail"] === "string" && <p class="small-text">Detail: {error.err.body["detail"]}</p>}
            {error.err instanceof ApiError && /^[0-9A-Z]{5}$/.test(error.err.code) && <p class="muted small-text">SQLSTATE {error.err.code}</p>}
          </div>
        )}
        {!running && !error && outcome && last && (
          <>
            <div class="result-head">
              <span data-testid="result-summary">
                {summarize(last)}
                {outcome.response.results.length > 1 ? ` (last of ${outcome.response.results.length} statements)` : ""}
              </span>
              <span class="muted">
                {outcome.response.duration_ms.toFixed(1)} ms in ccpd · {outcome.roundTripMs.toFixed(0)} ms round trip
              </span>
              {last.fields.length > 0 && (
                <span class="downloads">
                  <button type="button" class="small" onClick={() => download(`${fileBase}.csv`, "text/csv", toCsv(last))}>
                    CSV
                  </button>
                  <button type="button" class="small" onClick={() => download(`${fileBase}.json`, "application/json", toJson(last))}>
                    JSON
                  </button>
                </span>
              )}
            </div>
            {last.fields.length > 0 && <ResultGrid result={last} types={types} />}
          </>
        )}
        {!running && !error && !outcome && <p class="muted">Results appear here.</p>}
      </div>
      <details class="history">
        <summary>History ({history.length})</summary>
        {history.length === 0 ? (
          <p class="muted">Statements you run appear here.</p>
        ) : (
          <ul>
            {history.map((h) => (
              <li key={h.at + h.sql}>
                <button
                  type="button"
                  class="history-item"
                  title="Put this statement in the editor"
                  onClick={() => {
                    const v = view.current;
                    if (!v) return;
                    v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: h.sql }, selection: EditorSelection.cursor(h.sql.length) });
                    v.focus();
                  }}
                >
                  <code>{h.sql.length > 200 ? `${h.sql.slice(0, 200)}…` : h.sql}</code>
                  <span class={h.ok ? "muted small-text" : "bad small-text"}>
                    {new Date(h.at).toLocaleTimeString()} · {h.summary}
                  </span>
                </button>
              </li>
            ))}
          </ul>
        )}
      </details>
    </div>
  );
}

export function ResultGrid(props: { result: SqlResult; types: ReadonlyMap<number, string> }) {
  const { result } = props;
  const rows = result.rows.slice(0, SHOWN_ROWS);
  return (
    <div class="table-wrap grid-wrap">
      <table class="grid" data-testid="result-grid">
        <thead>
          <tr>
            {result.fields.map((f, i) => (
              <th key={i} scope="col">
                {f.name}
                <span class="type">{typeName(f.type_oid, props.types)}</span>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, r) => (
            <tr key={r}>
              {result.fields.map((_f, i) => (
                <td key={i} class={row[i] === null ? "null" : undefined}>
                  {cellText(row[i])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {result.rows.length > SHOWN_ROWS && <p class="muted small-text">Showing the first {SHOWN_ROWS} of {result.rows.length} rows; download CSV or JSON for all.</p>}
      {result.rows.length === 0 && <p class="muted small-text">No rows.</p>}
    </div>
  );
}
