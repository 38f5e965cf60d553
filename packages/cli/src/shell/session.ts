import type { ExecuteResult, Row } from "@ccp/client";
import { CliError, EXIT, type ExitCode } from "../errors.js";
import { execSql } from "../execute.js";
import type { Output } from "../output.js";
import type { ExecTarget } from "../target.js";
import {
  CONSTRAINT_TITLES,
  describeColumnsSql,
  describeConstraintsSql,
  describeIndexesSql,
  findRelationSql,
  HELP,
  LIST_DATABASES_SQL,
  LIST_SCHEMAS_SQL,
  listRelationsSql,
  literal,
  parseMeta,
  RELATION_TITLE,
} from "./meta.js";
import { renderResult, renderRows, titled, type Display, type ExpandedMode } from "./render.js";

/** What became of one statement or meta-command. */
export type Outcome = { readonly ok: true; readonly quit?: boolean } | { readonly ok: false; readonly exitCode: ExitCode };

export interface SessionOptions {
  readonly target: ExecTarget;
  readonly out: Output;
  /** Prints a result: straight to stdout, or through the pager when it is long. */
  readonly print: (lines: readonly string[]) => Promise<void>;
  /** Terminal width for `\x auto`; undefined when not a terminal. */
  readonly columns: () => number | undefined;
  readonly expanded: ExpandedMode;
  /** The Postgres database the gateway uses by default (for `\c` and messages). */
  readonly database: string;
}

const OK: Outcome = { ok: true };

/**
 * One shell session: runs statements and meta-commands against a database
 * through the SQL gateway and prints what psql would. Failures are printed
 * here and returned, so the interactive loop carries on and a script stops.
 */
export class Session {
  readonly #o: SessionOptions;
  #expanded: ExpandedMode;
  #timing = true;
  /** The Postgres database chosen with `\c`; undefined: the target's. */
  #database: string | undefined;
  #databaseName: string;
  /** The request in flight, if any: cancel() aborts it. */
  #inflight: AbortController | undefined;

  constructor(options: SessionOptions) {
    this.#o = options;
    this.#expanded = options.expanded;
    this.#databaseName = options.database;
  }

  get databaseName(): string {
    return this.#databaseName;
  }

  /** Run one statement and print its result or its error. */
  async statement(sql: string): Promise<Outcome> {
    try {
      const { result, ms } = await this.#exec(sql);
      await this.#o.print(renderResult(result, ms, this.#display()));
      return OK;
    } catch (err) {
      return this.#failed(err);
    }
  }

  /** Run a backslash command. */
  async meta(line: string): Promise<Outcome> {
    const { name, arg } = parseMeta(line);
    try {
      switch (name) {
        case "q":
          return { ok: true, quit: true };
        case "?":
          await this.#o.print(HELP);
          return OK;
        case "dt":
          return await this.#list(listRelationsSql({ tablesOnly: true, ...(arg ? { pattern: arg } : {}) }), "List of relations", "Did not find any tables.");
        case "d":
          if (!arg) return await this.#list(listRelationsSql({ tablesOnly: false }), "List of relations", "Did not find any relations.");
          return await this.#describe(arg);
        case "dn":
          return await this.#list(LIST_SCHEMAS_SQL, "List of schemas");
        case "l":
          return await this.#list(LIST_DATABASES_SQL, "List of databases");
        case "x":
          return await this.#setExpanded(arg);
        case "timing":
          return await this.#setTiming(arg);
        case "c":
        case "connect":
          return await this.#connect(arg);
        default:
          throw new CliError("invalid_command", `invalid command \\${name}. Try \\? for help.`, { exitCode: EXIT.usage });
      }
    } catch (err) {
      return this.#failed(err);
    }
  }

  #display(): Display {
    return { expanded: this.#expanded, timing: this.#timing, columns: this.#o.columns(), dim: (t) => this.#o.out.style("dim", t) };
  }

  /**
   * Ctrl+C while a statement runs: abort its HTTP request. ccpd sees the client
   * go and cancels the statement (gateway/routes.ts clientGone). False when idle.
   */
  cancel(): boolean {
    if (!this.#inflight) return false;
    this.#inflight.abort();
    return true;
  }

  async #exec(sql: string, database = this.#database) {
    const target: ExecTarget = database === undefined ? this.#o.target : { ...this.#o.target, database };
    const inflight = new AbortController();
    this.#inflight = inflight;
    try {
      return await execSql(target, sql, { fetch: (url, init) => fetch(url, { ...init, signal: inflight.signal }) });
    } catch (err) {
      if (!inflight.signal.aborted) throw err;
      throw new CliError("canceled", "canceling statement due to user request", {
        hint: "ccpd stopped the statement if it was still running; one that had already finished keeps its effects.",
        exitCode: EXIT.sqlError,
      });
    } finally {
      this.#inflight = undefined;
    }
  }

  async #rows(sql: string): Promise<ExecuteResult<Row>> {
    return (await this.#exec(sql)).result;
  }

  async #list(sql: string, title: string, empty?: string): Promise<Outcome> {
    const r = await this.#rows(sql);
    const rows = r.rows ?? [];
    if (rows.length === 0 && empty) {
      await this.#o.print([empty]);
      return OK;
    }
    const body = renderRows(r.fields ?? [], rows, this.#display());
    await this.#o.print([...titled(title, body), `(${rows.length} ${rows.length === 1 ? "row" : "rows"})`]);
    return OK;
  }

  async #describe(name: string): Promise<Outcome> {
    const found = (await this.#rows(findRelationSql(name))).rows?.[0] as { oid: string; schema: string; name: string; kind: string } | undefined;
    if (!found) throw new CliError("not_found", `Did not find any relation named "${name}".`, { hint: "List tables with \\dt." });
    const oid = String(Number(found.oid)); // digits only, spliced into the catalog queries
    const columns = await this.#rows(describeColumnsSql(oid));
    const lines = titled(`${RELATION_TITLE[found.kind] ?? "Relation"} "${found.schema}.${found.name}"`, renderRows(columns.fields ?? [], columns.rows ?? [], this.#display()));
    const indexes = ((await this.#rows(describeIndexesSql(oid))).rows ?? []) as { line: string }[];
    if (indexes.length) lines.push("Indexes:", ...indexes.map((i) => `    ${i.line}`));
    const constraints = ((await this.#rows(describeConstraintsSql(oid))).rows ?? []) as { kind: string; line: string }[];
    for (const kind of Object.keys(CONSTRAINT_TITLES)) {
      const of = constraints.filter((c) => c.kind === kind);
      if (of.length) lines.push(CONSTRAINT_TITLES[kind] as string, ...of.map((c) => `    ${c.line}`));
    }
    await this.#o.print(lines);
    return OK;
  }

  async #setExpanded(arg: string): Promise<Outcome> {
    const value = arg.toLowerCase();
    if (value === "") this.#expanded = this.#expanded === "on" ? "off" : "on";
    else if (value === "auto") this.#expanded = "auto";
    else if (["on", "off"].includes(value)) this.#expanded = value as ExpandedMode;
    else throw new CliError("usage", `\\x: unrecognized value "${arg}": Boolean expected.`, { hint: "Use \\x, \\x on, \\x off or \\x auto.", exitCode: EXIT.usage });
    await this.#o.print([this.#expanded === "auto" ? "Expanded display is used automatically." : `Expanded display is ${this.#expanded}.`]);
    return OK;
  }

  async #setTiming(arg: string): Promise<Outcome> {
    const value = arg.toLowerCase();
    if (value === "") this.#timing = !this.#timing;
    else if (value === "on" || value === "off") this.#timing = value === "on";
    else throw new CliError("usage", `\\timing: unrecognized value "${arg}": Boolean expected.`, { hint: "Use \\timing, \\timing on or \\timing off.", exitCode: EXIT.usage });
    await this.#o.print([`Timing is ${this.#timing ? "on" : "off"}.`]);
    return OK;
  }

  /**
   * `\c DATABASE`: every later request names DATABASE in the gateway's
   * `database` field. A ccpd from before that field rejects it
   * (invalid_request) or drops it; the probe's current_database() tells.
   */
  async #connect(arg: string): Promise<Outcome> {
    const name = arg.split(/\s+/)[0]?.replace(/^"(.*)"$/, "$1") ?? "";
    if (!name) {
      await this.#o.print([`You are connected to database "${this.#databaseName}" of ${this.#o.target.databaseId}.`]);
      return OK;
    }
    const unsupported = () =>
      new CliError("not_supported", `\\c is not supported by this ccpd yet: its SQL gateway always uses the database's default database.`, {
        hint: `Still connected to "${this.#databaseName}". Use \`ccp db info ${this.#o.target.databaseId} --show-secrets\` for a DATABASE_URL to use with psql meanwhile.`,
      });
    let current: string | undefined;
    try {
      current = (await this.#exec(`SELECT pg_catalog.current_database() AS db, ${literal(name)} AS wanted`, name)).result.rows?.[0]?.["db"] as string | undefined;
    } catch (err) {
      if (err instanceof CliError && err.code === "invalid_request") throw unsupported();
      throw err;
    }
    if (current !== name) throw unsupported();
    this.#database = name;
    this.#databaseName = name;
    await this.#o.print([`You are now connected to database "${name}".`]);
    return OK;
  }

  #failed(err: unknown): Outcome {
    if (!(err instanceof CliError)) throw err;
    this.#o.out.error(err.message, err.hint);
    return { ok: false, exitCode: err.exitCode };
  }
}

