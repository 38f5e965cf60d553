import { summarize, type Stats } from "./stats.ts";

/** One line of a figure: measured samples, or the ratio of two measured lines. */
export type Row = { readonly label: string; readonly samples: readonly number[] } | { readonly label: string; readonly ratio: readonly [string, string] };

const COLUMNS = ["p50", "p95", "max", "mean"] as const;
const LABEL_WIDTH = 34;
const CELL_WIDTH = 10;

const ms = (x: number) => `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`;

/**
 * Render a figure as plain text: a title line with the column heads, then one
 * line per row. Ratio rows divide the named rows column by column.
 */
export function renderTable(title: string, rows: readonly Row[]): string {
  const stats = new Map<string, Stats>();
  for (const row of rows) if ("samples" in row) stats.set(row.label, summarize(row.samples));
  return renderGrid(
    title,
    COLUMNS,
    rows.map((row) => {
      if ("samples" in row) {
        const s = stats.get(row.label) as Stats;
        return { label: row.label, cells: COLUMNS.map((c) => ms(s[c])) };
      }
      const [a, b] = row.ratio.map((label) => stats.get(label));
      if (!a || !b) throw new Error(`ratio of unknown rows: ${row.ratio.join(", ")}`);
      return { label: row.label, cells: COLUMNS.map((c) => `${(a[c] / b[c]).toFixed(2)}x`) };
    }),
  );
}

/** The layout of renderTable for cells computed by the caller: a title line with the heads, then one line per row. */
export function renderGrid(title: string, heads: readonly string[], rows: readonly { readonly label: string; readonly cells: readonly string[] }[]): string {
  // Columns are CELL_WIDTH wide unless a head or cell needs more (then two spaces more than it); labels likewise.
  const widths = heads.map((h, i) => Math.max(CELL_WIDTH, h.length + 2, ...rows.map((r) => (r.cells[i] ?? "").length + 2)));
  const labelWidth = Math.max(LABEL_WIDTH, ...rows.map((r) => r.label.length));
  const lines = [title.padEnd(labelWidth + 2) + heads.map((c, i) => c.padStart(widths[i] as number)).join("")];
  for (const row of rows) lines.push(`  ${row.label.padEnd(labelWidth)}${row.cells.map((c, i) => c.padStart(widths[i] ?? CELL_WIDTH)).join("")}`);
  return lines.join("\n");
}
