export interface CompletionTable {
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly { readonly name: string; readonly type: string }[];
}

export interface ColumnOption {
  readonly label: string;
  readonly detail: string;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Bare column names to offer while typing a statement: the columns of every table
 * the text names (`FROM items`, `UPDATE "Items"`, `public.items`). Qualified names
 * (`items.` → columns) are completed by @codemirror/lang-sql itself.
 */
export function columnsInScope(text: string, tables: readonly CompletionTable[]): ColumnOption[] {
  const out: ColumnOption[] = [];
  for (const t of tables) {
    const named = new RegExp(`(^|[^\\w$"])(${escapeRegExp(t.name)}|"${escapeRegExp(t.name.replaceAll('"', '""'))}")(?![\\w$"])`, /^[a-z_][a-z0-9_$]*$/.test(t.name) ? "i" : "");
    if (!named.test(text)) continue;
    for (const c of t.columns) out.push({ label: c.name, detail: `${t.name} · ${c.type}` });
  }
  return out;
}
