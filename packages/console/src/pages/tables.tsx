import { useCallback, useEffect, useState } from "preact/hooks";
import { databasesApi, type Database, type SqlResult } from "../api.js";
import { ErrorBox, Spinner } from "../components/ui.js";
import { browseSql, FILTER_OPS, qualifiedName, updateRowSql, type FilterOp } from "../lib/sql-text.js";
import { loadTableDetails, loadTables, type TableDetails, type TableInfo } from "../schema.js";

const PAGE = 50;
const KIND: Record<string, string> = { r: "table", p: "partitioned table", v: "view", m: "materialized view", f: "foreign table" };

export function TablesPanel(props: { db: Database }) {
  const [tables, setTables] = useState<TableInfo[] | undefined>();
  const [error, setError] = useState<unknown>();
  const [selected, setSelected] = useState<string | undefined>();
  useEffect(() => {
    loadTables(props.db.id).then(
      (t) => {
        setTables(t);
        setSelected((s) => s ?? (t[0] ? `${t[0].schema}.${t[0].name}` : undefined));
      },
      setError,
    );
  }, [props.db.id]);

  if (error) return <ErrorBox error={error} />;
  if (!tables) return <Spinner />;
  if (tables.length === 0) {
    return (
      <div class="empty">
        <p>No tables yet.</p>
        <p class="muted">
          Create one in the SQL editor, e.g. <code>CREATE TABLE items (id int PRIMARY KEY, name text)</code>.
        </p>
      </div>
    );
  }
  const table = tables.find((t) => `${t.schema}.${t.name}` === selected);
  const schemas = [...new Set(tables.map((t) => t.schema))];
  return (
    <div class="tables">
      <nav class="table-list" aria-label="Tables">
        {schemas.map((s) => (
          <div key={s}>
            <h3>{s}</h3>
            <ul>
              {tables
                .filter((t) => t.schema === s)
                .map((t) => (
                  <li key={t.name}>
                    <button type="button" class="link" aria-current={`${t.schema}.${t.name}` === selected ? "true" : undefined} onClick={() => setSelected(`${t.schema}.${t.name}`)}>
                      {t.name}
                      {t.kind !== "r" && <span class="muted small-text"> {KIND[t.kind]}</span>}
                    </button>
                  </li>
                ))}
            </ul>
          </div>
        ))}
      </nav>
      {table && <TableView key={`${table.schema}.${table.name}`} db={props.db} table={table} />}
    </div>
  );
}

function TableView(props: { db: Database; table: TableInfo }) {
  const { db, table } = props;
  const [tab, setTab] = useState<"rows" | "structure">("rows");
  const [details, setDetails] = useState<TableDetails | undefined>();
  const [error, setError] = useState<unknown>();
  const regclass = qualifiedName(table.schema, table.name);
  useEffect(() => {
    loadTableDetails(db.id, regclass).then(setDetails, setError);
  }, [db.id, regclass]);
  return (
    <div class="table-view">
      <h2>
        {table.schema}.{table.name} <span class="muted small-text">{KIND[table.kind]}</span>
      </h2>
      <div class="tabs small" role="tablist">
        <button type="button" role="tab" aria-selected={tab === "rows"} class="tab" onClick={() => setTab("rows")}>
          Rows
        </button>
        <button type="button" role="tab" aria-selected={tab === "structure"} class="tab" onClick={() => setTab("structure")}>
          Structure
        </button>
      </div>
      <ErrorBox error={error} />
      {tab === "rows" ? <Rows db={db} table={table} primaryKey={details?.primaryKey} /> : <Structure table={table} details={details} />}
    </div>
  );
}

function Structure(props: { table: TableInfo; details: TableDetails | undefined }) {
  const { table, details } = props;
  return (
    <div>
      <h3>Columns</h3>
      <div class="table-wrap">
        <table class="list">
          <thead>
            <tr>
              <th scope="col">Column</th>
              <th scope="col">Type</th>
              <th scope="col">Nullable</th>
              <th scope="col">Default</th>
            </tr>
          </thead>
          <tbody>
            {table.columns.map((c) => (
              <tr key={c.name}>
                <td>
                  <code>{c.name}</code>
                  {details?.primaryKey.includes(c.name) && <span class="badge"> PK</span>}
                </td>
                <td data-label="Type">
                  <code>{c.type}</code>
                </td>
                <td data-label="Nullable">{c.not_null ? "no" : "yes"}</td>
                <td data-label="Default">{c.default === null ? <span class="muted">—</span> : <code>{c.default}</code>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>Indexes</h3>
      {!details ? <Spinner /> : details.indexes.length === 0 ? <p class="muted">None.</p> : (
        <ul class="defs">
          {details.indexes.map((i) => (
            <li key={i.name}>
              <code>{i.definition}</code>
            </li>
          ))}
        </ul>
      )}
      <h3>Constraints</h3>
      {!details ? <Spinner /> : details.constraints.length === 0 ? <p class="muted">None.</p> : (
        <ul class="defs">
          {details.constraints.map((c) => (
            <li key={c.name}>
              <strong>{c.name}</strong> <span class="muted">({c.type})</span> <code>{c.definition}</code>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

interface Editing {
  index: number;
  values: (string | null)[];
  /** The SQL under review, once "Review SQL" was pressed. */
  sql?: string;
}

function Rows(props: { db: Database; table: TableInfo; primaryKey: string[] | undefined }) {
  const { db, table, primaryKey } = props;
  const [page, setPage] = useState(0);
  const [order, setOrder] = useState<{ column: string; desc: boolean } | undefined>();
  const [filterDraft, setFilterDraft] = useState<{ column: string; op: FilterOp; value: string }>({ column: table.columns[0]?.name ?? "", op: "=", value: "" });
  const [filter, setFilter] = useState<{ column: string; op: FilterOp; value: string } | undefined>();
  const [result, setResult] = useState<SqlResult | undefined>();
  const [error, setError] = useState<unknown>();
  const [editing, setEditing] = useState<Editing | undefined>();
  const [notice, setNotice] = useState<string | undefined>();

  const load = useCallback(async () => {
    const q = browseSql({ schema: table.schema, table: table.name, orderBy: order?.column, descending: order?.desc, filter, limit: PAGE + 1, offset: page * PAGE });
    try {
      const r = await databasesApi.sql(db.id, { sql: q.sql, ...(q.params.length ? { params: q.params } : {}), raw_text: true });
      setResult(r.results[0]);
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  }, [db.id, table, page, order, filter]);
  useEffect(() => {
    void load();
  }, [load]);

  const fields = result?.fields ?? [];
  const rows = (result?.rows ?? []).slice(0, PAGE) as (string | null)[][];
  const hasNext = (result?.rows.length ?? 0) > PAGE;
  const canEdit = table.kind === "r" || table.kind === "p";

  const review = () => {
    if (!editing || !primaryKey) return;
    const original = rows[editing.index] as (string | null)[];
    try {
      const sql = updateRowSql({
        schema: table.schema,
        table: table.name,
        key: primaryKey.map((k) => ({ column: k, value: original[fields.findIndex((f) => f.name === k)] ?? null })),
        changes: fields.flatMap((f, i) => (editing.values[i] !== original[i] ? [{ column: f.name, value: editing.values[i] ?? null }] : [])),
      });
      setEditing({ ...editing, sql });
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  };
  const apply = async () => {
    if (!editing?.sql) return;
    try {
      const r = await databasesApi.sql(db.id, { sql: editing.sql });
      const n = r.results[0]?.row_count ?? 0;
      setNotice(n === 1 ? "Row updated." : `The UPDATE changed ${n} rows (the row may have changed or gone meanwhile).`);
      setEditing(undefined);
      await load();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <div>
      <form
        class="filter"
        onSubmit={(e) => {
          e.preventDefault();
          setPage(0);
          setFilter(filterDraft.op.startsWith("is") || filterDraft.value !== "" ? { ...filterDraft } : undefined);
        }}
      >
        <label class="inline">
          Filter
          <select aria-label="Filter column" value={filterDraft.column} onChange={(e) => setFilterDraft({ ...filterDraft, column: (e.target as HTMLSelectElement).value })}>
            {table.columns.map((c) => (
              <option key={c.name}>{c.name}</option>
            ))}
          </select>
        </label>
        <select aria-label="Filter operator" value={filterDraft.op} onChange={(e) => setFilterDraft({ ...filterDraft, op: (e.target as HTMLSelectElement).value as FilterOp })}>
          {FILTER_OPS.map((op) => (
            <option key={op}>{op}</option>
          ))}
        </select>
        {!filterDraft.op.startsWith("is") && (
          <input aria-label="Filter value" value={filterDraft.value} onInput={(e) => setFilterDraft({ ...filterDraft, value: (e.target as HTMLInputElement).value })} placeholder="value" />
        )}
        <button type="submit">Apply</button>
        {filter && (
          <button
            type="button"
            class="link"
            onClick={() => {
              setFilter(undefined);
              setPage(0);
            }}
          >
            Clear
          </button>
        )}
      </form>
      <ErrorBox error={error} onDismiss={() => setError(undefined)} />
      {notice && (
        <p class="ok" role="status">
          {notice}
        </p>
      )}
      {editing?.sql && (
        <div class="card review" role="region" aria-label="SQL to run">
          <p>This exact SQL will run:</p>
          <pre data-testid="edit-sql">{editing.sql}</pre>
          <div class="actions left">
            <button type="button" class="primary" onClick={() => void apply()} autoFocus>
              Run this SQL
            </button>
            <button type="button" onClick={() => setEditing({ ...editing, sql: undefined })}>
              Back to editing
            </button>
          </div>
        </div>
      )}
      {!result && !error && <Spinner />}
      {result && (
        <div class="table-wrap grid-wrap">
          <table class="grid" data-testid="rows-grid">
            <thead>
              <tr>
                {canEdit && (
                  <th scope="col">
                    <span class="sr-only">Edit</span>
                  </th>
                )}
                {fields.map((f) => (
                  <th key={f.name} scope="col" aria-sort={order?.column === f.name ? (order.desc ? "descending" : "ascending") : "none"}>
                    <button type="button" class="sort" onClick={() => setOrder(order?.column === f.name && !order.desc ? { column: f.name, desc: true } : { column: f.name, desc: false })}>
                      {f.name}
                      {order?.column === f.name ? (order.desc ? " ▼" : " ▲") : ""}
                    </button>
                    <span class="type">{table.columns.find((c) => c.name === f.name)?.type}</span>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((row, r) =>
                editing?.index === r && !editing.sql ? (
                  <tr key={r} class="editing">
                    <td>
                      <button type="button" class="small primary" onClick={review}>
                        Review SQL
                      </button>
                      <button type="button" class="small" onClick={() => setEditing(undefined)}>
                        Cancel
                      </button>
                    </td>
                    {fields.map((f, i) => (
                      <td key={f.name}>
                        <input
                          aria-label={f.name}
                          value={editing.values[i] ?? ""}
                          placeholder={editing.values[i] === null ? "NULL" : ""}
                          onInput={(e) => {
                            const values = [...editing.values];
                            values[i] = (e.target as HTMLInputElement).value;
                            setEditing({ ...editing, values });
                          }}
                          onKeyDown={(e) => {
                            if (e.key === "Enter") review();
                            if (e.key === "Escape") setEditing(undefined);
                          }}
                        />
                        <label class="null-toggle small-text">
                          <input
                            type="checkbox"
                            checked={editing.values[i] === null}
                            onChange={(e) => {
                              const values = [...editing.values];
                              values[i] = (e.target as HTMLInputElement).checked ? null : "";
                              setEditing({ ...editing, values });
                            }}
                          />
                          NULL
                        </label>
                      </td>
                    ))}
                  </tr>
                ) : (
                  <tr key={r}>
                    {canEdit && (
                      <td>
                        <button
                          type="button"
                          class="small"
                          disabled={!!editing || primaryKey?.length === 0}
                          aria-label={`Edit row ${page * PAGE + r + 1}`}
                          title={primaryKey && primaryKey.length === 0 ? "No primary key: edit with the SQL editor" : "Edit this row"}
                          onClick={() => {
                            setNotice(undefined);
                            setEditing({ index: r, values: [...row] });
                          }}
                        >
                          Edit
                        </button>
                      </td>
                    )}
                    {row.map((v, i) => (
                      <td key={i} class={v === null ? "null" : undefined}>
                        {v === null ? "NULL" : v}
                      </td>
                    ))}
                  </tr>
                ),
              )}
            </tbody>
          </table>
          {rows.length === 0 && <p class="muted">{filter ? "No rows match the filter." : "The table is empty."}</p>}
        </div>
      )}
      <div class="pager">
        <button type="button" disabled={page === 0} onClick={() => setPage(page - 1)}>
          ← Previous
        </button>
        <span class="muted">
          Rows {rows.length === 0 ? 0 : page * PAGE + 1}–{page * PAGE + rows.length}
        </span>
        <button type="button" disabled={!hasNext} onClick={() => setPage(page + 1)}>
          Next →
        </button>
      </div>
    </div>
  );
}
