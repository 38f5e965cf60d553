import { cellLines } from "./table.js";
import { displayWidth } from "./width.js";

/**
 * psql's expanded display (`\x`) in the unicode line style that renderTable
 * uses: one block per row, a column per line.
 *
 *   ─[ RECORD 1 ]────────
 *   id    │ 1
 *   email │ alice@co.com
 *
 * A value with newlines continues on the next lines under its first one. The
 * RECORD rule stops at `maxWidth` (the terminal's), so that it does not wrap.
 */
export function renderExpanded(names: readonly string[], rows: readonly (readonly string[])[], maxWidth = Infinity): string[] {
  const nameWidth = Math.max(0, ...names.map((n) => Math.max(...cellLines(n).map(displayWidth))));
  const values = rows.map((row) => names.map((_, i) => cellLines(row[i] ?? "")));
  const valueWidth = Math.max(0, ...values.flatMap((row) => row.flatMap((lines) => lines.map(displayWidth))));
  const out: string[] = [];
  values.forEach((row, r) => {
    const title = `─[ RECORD ${r + 1} ]`;
    out.push(title + "─".repeat(Math.max(1, Math.min(nameWidth + 3 + valueWidth, maxWidth) - displayWidth(title))));
    names.forEach((name, i) => {
      const lines = row[i] as string[];
      lines.forEach((line, l) => {
        const label = l === 0 ? name : "";
        out.push(`${label}${" ".repeat(nameWidth - displayWidth(label))} │ ${line}`.trimEnd());
      });
    });
  });
  return out;
}
