import { displayWidth } from "./width.js";

/**
 * psql-style result tables, as seed 000 shows them for `ccp db exec` and
 * `ccp db connect`:
 *
 *   id │ name  │    email
 *   ───┼───────┼──────────────
 *    1 │ Alice │ alice@co.com
 *
 * psql's unicode layout without the outer margin: headers centred, numeric
 * columns right-aligned, NULL as an empty cell, a value with newlines spread
 * over several lines with `↵` marking where it continues (as psql does), no
 * trailing whitespace. Hand-written because no table library does psql's
 * layout (the continuation markers, numeric alignment by type) and the
 * format is ours to keep stable.
 */

export type Align = "left" | "right";

export interface TableColumn {
  readonly name: string;
  readonly align: Align;
}

const NEWLINE_MARK = "↵";

/** Lines of the table for `rows` (cells as display text, already converted from values). */
export function renderTable(columns: readonly TableColumn[], rows: readonly (readonly string[])[]): string[] {
  const header = columns.map((c) => cellLines(c.name));
  const body = rows.map((row) => columns.map((_, i) => cellLines(row[i] ?? "")));
  const widths = columns.map((_, i) => Math.max(...[header[i] as string[], ...body.map((r) => r[i] as string[])].flatMap((lines) => lines.map(displayWidth))));

  const lines = [...layoutRow(header, widths, () => "center")];
  lines.push(widths.map((w) => "─".repeat(w)).join("─┼─"));
  for (const row of body) lines.push(...layoutRow(row, widths, (i) => (columns[i] as TableColumn).align));
  return lines;
}

/** One logical row over as many physical lines as its tallest cell needs. */
function layoutRow(cells: readonly string[][], widths: readonly number[], align: (i: number) => Align | "center"): string[] {
  const height = Math.max(1, ...cells.map((c) => c.length));
  const out: string[] = [];
  for (let l = 0; l < height; l++) {
    let line = "";
    for (let i = 0; i < cells.length; i++) {
      const cell = cells[i] as string[];
      const text = cell[l] ?? "";
      const continues = l < cell.length - 1;
      const last = i === cells.length - 1;
      line += pad(text, widths[i] as number, align(i));
      if (!last) line += `${continues ? NEWLINE_MARK : " "}│ `;
      else if (continues) line += NEWLINE_MARK;
    }
    out.push(line.trimEnd());
  }
  return out;
}

function pad(text: string, width: number, align: Align | "center"): string {
  const room = width - displayWidth(text);
  if (room <= 0) return text;
  if (align === "right") return " ".repeat(room) + text;
  if (align === "center") {
    const left = Math.floor(room / 2);
    return " ".repeat(left) + text + " ".repeat(room - left);
  }
  return text + " ".repeat(room);
}

/**
 * A cell's text as display lines: split at newlines, tabs expanded to the next
 * multiple of 8, and other control characters shown as `\r`, `\x1B`, … so that
 * data cannot move the cursor or recolour the terminal.
 */
export function cellLines(text: string): string[] {
  return text.split(/\r?\n/).map((line) => {
    let out = "";
    for (const ch of line) {
      const cp = ch.codePointAt(0) as number;
      if (ch === "\t") out += " ".repeat(8 - (displayWidth(out) % 8));
      else if (ch === "\r") out += "\\r";
      else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) out += `\\x${cp.toString(16).toUpperCase().padStart(2, "0")}`;
      else out += ch;
    }
    return out;
  });
}
