import { graphemes } from "./width.js";

/** psql shows at most this many columns of the offending line, cut around the error. */
const DISPLAY_SIZE = 60;
const MIN_RIGHT_CUT = 10;

/**
 * psql's error position report for `position` (1-based, in characters, as
 * Postgres counts them) in `sql`:
 *
 *   LINE 1: SELECT * FRM users
 *                    ^
 *
 * Long lines are cut to a window around the error, marked with `...`.
 */
export function positionLines(sql: string, position: number, label = "LINE"): string[] {
  const chars = Array.from(sql);
  const offset = Math.min(Math.max(position - 1, 0), chars.length);
  let start = offset;
  while (start > 0 && chars[start - 1] !== "\n") start--;
  let end = offset;
  while (end < chars.length && chars[end] !== "\n") end++;
  const lineNo = chars.slice(0, start).filter((c) => c === "\n").length + 1;
  // Tabs and a trailing \r would misplace the caret: one column each.
  const line = graphemes(chars.slice(start, end).join("").replace(/\r$/, "").replace(/[\t\r]/g, " "));
  const caretIndex = offset - start; // in characters; graphemes differ only for combining sequences
  let caretCol = 0;
  let consumed = 0;
  let caretAt = line.length;
  for (let i = 0; i < line.length; i++) {
    if (consumed >= caretIndex) {
      caretAt = i;
      break;
    }
    consumed += Array.from((line[i] as { text: string }).text).length;
    caretCol += (line[i] as { width: number }).width;
  }

  // Cut to a window of DISPLAY_SIZE columns that shows at least MIN_RIGHT_CUT after the caret.
  let from = 0;
  let to = line.length;
  const total = line.reduce((w, g) => w + g.width, 0);
  if (total > DISPLAY_SIZE) {
    let width = total;
    let afterCaret = total - caretCol;
    while (width > DISPLAY_SIZE && afterCaret > MIN_RIGHT_CUT && to > caretAt + 1) {
      to--;
      width -= (line[to] as { width: number }).width;
      afterCaret -= (line[to] as { width: number }).width;
    }
    while (width > DISPLAY_SIZE && from < caretAt) {
      width -= (line[from] as { width: number }).width;
      caretCol -= (line[from] as { width: number }).width;
      from++;
    }
  }
  const head = from > 0 ? "..." : "";
  const tail = to < line.length ? "..." : "";
  const prefix = `${label} ${lineNo}: ${head}`;
  const shown = line
    .slice(from, to)
    .map((g) => g.text)
    .join("");
  return [`${prefix}${shown}${tail}`, `${" ".repeat(prefix.length + caretCol)}^`];
}
