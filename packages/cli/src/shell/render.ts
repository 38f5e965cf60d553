import type { ExecuteResult, Field, JsonValue } from "@ccp/client";
import { renderExpanded } from "../format/expanded.js";
import { renderTable } from "../format/table.js";
import { alignFor, cellText } from "../format/values.js";
import { displayWidth } from "../format/width.js";

/**
 * `\x`: "auto" (the default on a terminal) shows a result expanded when its
 * table would be wider than the terminal, so that wide rows stay readable
 * instead of wrapping or being cut.
 */
export type ExpandedMode = "on" | "off" | "auto";

export interface Display {
  readonly expanded: ExpandedMode;
  readonly timing: boolean;
  /** Terminal width, for `auto`; undefined when stdout is not a terminal. */
  readonly columns: number | undefined;
  readonly dim: (text: string) => string;
}

/** Commands whose count is "rows affected" rather than rows returned (as in `ccp db exec`). */
const WRITES = new Set(["INSERT", "UPDATE", "DELETE", "MERGE", "COPY"]);

export const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

/** Rows as a table, or as RECORD blocks when expanded (or too wide for the terminal in auto mode). */
export function renderRows(fields: readonly Field[], rows: readonly Record<string, JsonValue>[], display: Display): string[] {
  // Rows are objects keyed by name; a repeated column name shows the last value, as the gateway sends it.
  const cells = rows.map((row) => fields.map((f) => cellText(row[f.name] ?? null, f.typeOid)));
  if (display.expanded === "on") return renderExpanded(fields.map((f) => f.name), cells, display.columns);
  const table = renderTable(
    fields.map((f) => ({ name: f.name, align: alignFor(f.typeOid) })),
    cells,
  );
  if (display.expanded === "auto" && display.columns !== undefined && rows.length > 0 && table.some((l) => displayWidth(l) > (display.columns as number))) {
    return renderExpanded(
      fields.map((f) => f.name),
      cells,
      display.columns,
    );
  }
  return table;
}

/** What the shell prints for a statement: its rows and `(N rows)`, or `N rows affected`, or its command; then the time. */
export function renderResult(result: ExecuteResult, ms: number, display: Display): string[] {
  const time = display.dim(`${Math.round(ms)}ms`);
  const lines: string[] = [];
  if (result.rows && result.fields) lines.push(...renderRows(result.fields, result.rows, display));
  if (WRITES.has(result.command) || (!result.rows && result.command === "SELECT")) {
    const affected = plural(result.rowsAffected, "row affected", "rows affected");
    lines.push(display.timing ? `${affected} · ${time}` : affected);
  } else if (result.rows) {
    lines.push(`(${plural(result.rows.length, "row", "rows")})`);
    if (display.timing) lines.push(time);
  } else {
    lines.push(display.timing ? `${result.command} · ${time}` : result.command);
  }
  return lines;
}

/** psql centres a title (`List of relations`) over its table. */
export function titled(title: string, body: readonly string[]): string[] {
  const width = Math.max(0, ...body.map(displayWidth));
  const left = Math.max(0, Math.floor((width - displayWidth(title)) / 2));
  return [" ".repeat(left) + title, ...body];
}
