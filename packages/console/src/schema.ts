import { objects, query } from "./api.js";

export interface Column {
  name: string;
  type: string;
  not_null: boolean;
  default: string | null;
}

export interface TableInfo {
  schema: string;
  name: string;
  /** r table, p partitioned table, v view, m materialized view, f foreign table */
  kind: string;
  columns: Column[];
}

const TABLES_SQL = `SELECT n.nspname AS schema, c.relname AS table, c.relkind::text AS kind,
  a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1, 2, a.attnum`;

/** Every user table and view with its columns, in one query. */
export async function loadTables(dbId: string): Promise<TableInfo[]> {
  const r = await query(dbId, TABLES_SQL, [], true);
  const rows = objects<{ schema: string; table: string; kind: string; column: string | null; type: string | null; not_null: string | null; default: string | null }>(r);
  const out: TableInfo[] = [];
  for (const row of rows) {
    let t = out[out.length - 1];
    if (!t || t.schema !== row.schema || t.name !== row.table) {
      t = { schema: row.schema, name: row.table, kind: row.kind, columns: [] };
      out.push(t);
    }
    if (row.column !== null) t.columns.push({ name: row.column, type: row.type ?? "", not_null: row.not_null === "t", default: row.default });
  }
  return out;
}

/** The shape @codemirror/lang-sql completes from: { schema: { table: [columns] } }. */
export function completionSchema(tables: readonly TableInfo[]): Record<string, Record<string, string[]>> {
  const ns: Record<string, Record<string, string[]>> = {};
  for (const t of tables) (ns[t.schema] ??= {})[t.name] = t.columns.map((c) => c.name);
  return ns;
}

export interface TableDetails {
  indexes: { name: string; definition: string }[];
  constraints: { name: string; type: string; definition: string }[];
  primaryKey: string[];
}

const CONSTRAINT_TYPES: Record<string, string> = { p: "primary key", u: "unique", f: "foreign key", c: "check", x: "exclusion", t: "trigger", n: "not null" };

export async function loadTableDetails(dbId: string, regclass: string): Promise<TableDetails> {
  const [idx, con, pk] = await Promise.all([
    query(dbId, "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i WHERE i.indrelid = $1::regclass ORDER BY 1", [regclass], true),
    query(dbId, "SELECT conname AS name, contype::text AS type, pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE conrelid = $1::regclass ORDER BY contype, conname", [regclass], true),
    query(
      dbId,
      "SELECT a.attname AS name FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.ord",
      [regclass],
      true,
    ),
  ]);
  return {
    indexes: objects<{ name: string; definition: string }>(idx),
    constraints: objects<{ name: string; type: string; definition: string }>(con).map((c) => ({ ...c, type: CONSTRAINT_TYPES[c.type] ?? c.type })),
    primaryKey: objects<{ name: string }>(pk).map((r) => r.name),
  };
}
