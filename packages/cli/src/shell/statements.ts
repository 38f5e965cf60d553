/**
 * Splits what is typed into the shell into SQL statements, as psql does: a
 * statement ends at a `;` outside quotes ('…', E'…', "…"), dollar quotes
 * ($$…$$, $tag$…$tag$), comments (-- …, nested /* … *\/) and parentheses.
 * Hand-written: this is a lexer of a few states, not a SQL parser, and it has
 * to work line by line to know when to show the continuation prompt.
 */

type State =
  | { readonly kind: "normal" }
  | { readonly kind: "single"; readonly escapes: boolean }
  | { readonly kind: "double" }
  | { readonly kind: "dollar"; readonly tag: string }
  | { readonly kind: "line-comment" }
  | { readonly kind: "block-comment"; depth: number };

const NORMAL: State = { kind: "normal" };
const IDENT_CHAR = /[\p{L}\p{N}_$]/u;
const DOLLAR_TAG = /^\$(?:[\p{L}_][\p{L}\p{N}_]*)?\$/u;

export class SqlSplitter {
  #buffer = "";
  #state: State = NORMAL;
  #parens = 0;
  /** Something other than whitespace and comments is pending. */
  #content = false;

  /** A statement has begun and not ended (the continuation prompt). */
  get pending(): boolean {
    return this.#content || this.#state.kind !== "normal";
  }

  /** Inside a string, quoted identifier, dollar quote or block comment: a `\` line is text, not a meta-command. */
  get inLiteral(): boolean {
    return this.#state.kind !== "normal" && this.#state.kind !== "line-comment";
  }

  /** Add one line (without its newline); returns the statements it completed, each trimmed, with its `;`. */
  push(line: string): string[] {
    const start = this.#buffer.length;
    this.#buffer += `${line}\n`;
    const done: string[] = [];
    let from = 0;
    const text = this.#buffer;
    for (let i = start; i < text.length; i++) {
      const c = text[i] as string;
      const next = text[i + 1];
      const s = this.#state;
      switch (s.kind) {
        case "normal":
          if (c === "'") {
            const prev = text[i - 1];
            const beforePrev = text[i - 2];
            this.#state = { kind: "single", escapes: (prev === "E" || prev === "e") && !(beforePrev !== undefined && IDENT_CHAR.test(beforePrev)) };
            this.#content = true;
          } else if (c === '"') {
            this.#state = { kind: "double" };
            this.#content = true;
          } else if (c === "-" && next === "-") {
            this.#state = { kind: "line-comment" };
            i++;
          } else if (c === "/" && next === "*") {
            this.#state = { kind: "block-comment", depth: 1 };
            i++;
          } else if (c === "$" && !(i > 0 && IDENT_CHAR.test(text[i - 1] as string))) {
            const tag = DOLLAR_TAG.exec(text.slice(i, i + 256))?.[0];
            if (tag) {
              this.#state = { kind: "dollar", tag };
              i += tag.length - 1;
            }
            this.#content = true;
          } else if (c === "(") {
            this.#parens++;
            this.#content = true;
          } else if (c === ")") {
            this.#parens = Math.max(0, this.#parens - 1);
            this.#content = true;
          } else if (c === ";" && this.#parens === 0) {
            const statement = text.slice(from, i + 1).trim();
            if (this.#content) done.push(statement);
            from = i + 1;
            this.#content = false;
          } else if (!/\s/.test(c)) {
            this.#content = true;
          }
          break;
        case "single":
          if (s.escapes && c === "\\") i++;
          else if (c === "'" && next === "'") i++;
          else if (c === "'") this.#state = NORMAL;
          break;
        case "double":
          if (c === '"' && next === '"') i++;
          else if (c === '"') this.#state = NORMAL;
          break;
        case "dollar":
          if (c === "$" && text.startsWith(s.tag, i)) {
            i += s.tag.length - 1;
            this.#state = NORMAL;
          }
          break;
        case "line-comment":
          if (c === "\n") this.#state = NORMAL;
          break;
        case "block-comment":
          if (c === "/" && next === "*") {
            s.depth++;
            i++;
          } else if (c === "*" && next === "/") {
            i++;
            if (--s.depth === 0) this.#state = NORMAL;
          }
          break;
      }
    }
    this.#buffer = text.slice(from);
    if (!this.pending && this.#buffer.trim() === "") this.#buffer = "";
    return done;
  }

  /** At the end of the input: what is left, if it is more than whitespace and comments. */
  flush(): string | undefined {
    const rest = this.#content ? this.#buffer.trim() : undefined;
    this.reset();
    return rest;
  }

  /** Drop the pending statement (Ctrl+C). */
  reset(): void {
    this.#buffer = "";
    this.#state = NORMAL;
    this.#parens = 0;
    this.#content = false;
  }
}
