/** Where a Postgres error `position` points in a file. */
export interface SourceLocation {
  /** 1-based. */
  readonly line: number;
  /** 1-based, in characters. */
  readonly column: number;
  /** The text of that line, without its line break. */
  readonly text: string;
}

/**
 * Turn Postgres' `position` (a 1-based offset in characters, i.e. code
 * points, into the SQL text sent) into a line and column. Undefined when the
 * position is outside the text.
 */
export function locate(sql: string, position: number): SourceLocation | undefined {
  if (!Number.isInteger(position) || position < 1) return undefined;
  let line = 1;
  let lineStart = 0; // UTF-16 index where the current line starts
  let column = 1;
  let chars = 0;
  let i = 0;
  for (const ch of sql) {
    chars++;
    if (chars === position) break;
    i += ch.length;
    if (ch === "\n") {
      line++;
      lineStart = i;
      column = 1;
    } else {
      column++;
    }
  }
  // Postgres points one past the end for "syntax error at end of input".
  if (chars < position - 1) return undefined;
  const end = sql.indexOf("\n", lineStart);
  const text = sql.slice(lineStart, end === -1 ? undefined : end).replace(/\r$/, "");
  return { line, column, text };
}

