/** A statement's place in the editor's text: [from, to) in UTF-16 offsets. */
export interface StatementRange {
  readonly from: number;
  readonly to: number;
  readonly text: string;
}

/**
 * Split SQL text into statements at top-level semicolons, the way Postgres'
 * lexer sees them: not inside '…' / E'…' strings, "…" identifiers, $tag$…$tag$
 * bodies, -- line comments or (nested) block comments. Each range is trimmed of
 * surrounding whitespace; empty statements are dropped. The semicolon is not included.
 */
export function splitStatements(sql: string): StatementRange[] {
  const out: StatementRange[] = [];
  let start = 0;
  let i = 0;
  const push = (end: number) => {
    let from = start;
    let to = end;
    while (from < to && /\s/.test(sql[from] as string)) from++;
    while (to > from && /\s/.test(sql[to - 1] as string)) to--;
    if (to > from) out.push({ from, to, text: sql.slice(from, to) });
  };
  while (i < sql.length) {
    const c = sql[i];
    const next = sql[i + 1];
    if (c === "-" && next === "-") {
      const nl = sql.indexOf("\n", i);
      i = nl === -1 ? sql.length : nl + 1;
    } else if (c === "/" && next === "*") {
      let depth = 1;
      i += 2;
      while (i < sql.length && depth > 0) {
        if (sql[i] === "/" && sql[i + 1] === "*") {
          depth++;
          i += 2;
        } else if (sql[i] === "*" && sql[i + 1] === "/") {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (c === "'" || c === '"') {
      // E'…' strings allow backslash escapes; standard strings and identifiers only doubling.
      const escapes = c === "'" && i > 0 && /[eE]/.test(sql[i - 1] as string) && !/[\w$]/.test(sql[i - 2] ?? " ");
      i++;
      while (i < sql.length) {
        if (escapes && sql[i] === "\\") i += 2;
        else if (sql[i] === c && sql[i + 1] === c) i += 2;
        else if (sql[i] === c) {
          i++;
          break;
        } else i++;
      }
    } else if (c === "$" && !/[\w$]/.test(sql[i - 1] ?? " ")) {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (m) {
        const tag = m[0];
        const end = sql.indexOf(tag, i + tag.length);
        i = end === -1 ? sql.length : end + tag.length;
      } else i++;
    } else if (c === ";") {
      push(i);
      i++;
      start = i;
    } else i++;
  }
  push(sql.length);
  return out;
}

/**
 * The statement to run for a cursor at `pos`: the one containing it, else the
 * nearest one before it (cursor after `;` or on a blank line after it), else the
 * first one after it. Undefined when the text has no statement.
 */
export function statementAt(sql: string, pos: number): StatementRange | undefined {
  const all = splitStatements(sql);
  let before: StatementRange | undefined;
  for (const s of all) {
    if (pos >= s.from && pos <= s.to) return s;
    if (s.to <= pos) before = s;
  }
  return before ?? all[0];
}

/**
 * Postgres reports an error's `position` as a 1-based count of characters (code
 * points) into the text it was sent; the editor counts UTF-16 units. Returns the
 * editor offset, given where the sent text starts.
 */
export function errorOffset(sentText: string, position: number, base = 0): number {
  let units = 0;
  let chars = 0;
  for (const ch of sentText) {
    if (chars === position - 1) break;
    units += ch.length;
    chars++;
  }
  return base + units;
}
