/**
 * One statement as the gateway takes it: SQL text with `$1, $2, …` and their values.
 *
 * @example
 * ```ts
 * const insert: Statement = { sql: "INSERT INTO users (name) VALUES ($1)", params: ["Alice"] };
 * await db.transaction([insert]);
 * ```
 */
export interface Statement {
  readonly sql: string;
  readonly params?: readonly unknown[] | undefined;
}

/**
 * SQL built by the {@link sql} tag: the text with `$1, $2, …` placeholders and
 * the values that go with them. Values are never spliced into the text; they
 * travel as parameters and Postgres binds them. A `SqlStatement` is a
 * {@link Statement}, so it can be passed anywhere one is taken, and it can be
 * nested in another `sql` template (its placeholders are renumbered).
 *
 * @example
 * ```ts
 * import { sql } from "@ccp/client";
 *
 * const q = sql`SELECT * FROM users WHERE id = ${42} AND name = ${"O'Brien"}`;
 * q.sql;    // "SELECT * FROM users WHERE id = $1 AND name = $2"
 * q.params; // [42, "O'Brien"]
 * ```
 */
export class SqlStatement implements Statement {
  readonly #strings: readonly string[];
  readonly #values: readonly unknown[];
  #rendered: { sql: string; params: unknown[] } | undefined;

  constructor(strings: readonly string[], values: readonly unknown[]) {
    if (strings.length !== values.length + 1) throw new TypeError("sql: expected one more string than values (use it as a tag: sql`…`).");
    this.#strings = Object.freeze([...strings]);
    this.#values = Object.freeze([...values]);
  }

  /** The SQL text with `$n` placeholders. */
  get sql(): string {
    return this.#render().sql;
  }

  /** Values for the placeholders, in order. */
  get params(): readonly unknown[] {
    return this.#render().params;
  }

  /** `{ sql, params }`: what is sent, and what `JSON.stringify` shows. */
  toJSON(): { sql: string; params: unknown[] } {
    const { sql, params } = this.#render();
    return { sql, params: [...params] };
  }

  #render(): { sql: string; params: unknown[] } {
    if (!this.#rendered) {
      const params: unknown[] = [];
      const sql = this.#append(params);
      this.#rendered = { sql, params };
    }
    return this.#rendered;
  }

  #append(params: unknown[]): string {
    let text = this.#strings[0] as string;
    for (let i = 0; i < this.#values.length; i++) {
      const value = this.#values[i];
      text += value instanceof SqlStatement ? value.#append(params) : `$${params.push(value)}`;
      text += this.#strings[i + 1] as string;
    }
    return text;
  }
}

/**
 * Tag for parameterised SQL: every `${value}` becomes a placeholder (`$1`,
 * `$2`, …) and its value a parameter, so quotes in values and injection
 * attempts stay plain data. A nested `sql` fragment is spliced in as SQL.
 *
 * @example
 * ```ts
 * import { createClient, sql } from "@ccp/client";
 *
 * const db = createClient({ url: process.env.DATABASE_URL!, token: process.env.DATABASE_TOKEN! });
 * const byEmail = sql`email = ${email}`;
 * const { rows } = await db.query(sql`SELECT id FROM users WHERE ${byEmail} LIMIT ${10}`);
 * await db.transaction([
 *   sql`INSERT INTO users (name) VALUES (${"Alice"})`,
 *   sql`INSERT INTO logs (action) VALUES (${"user_created"})`,
 * ]);
 * ```
 */
export function sql(strings: TemplateStringsArray, ...values: unknown[]): SqlStatement {
  return new SqlStatement(strings, values);
}
