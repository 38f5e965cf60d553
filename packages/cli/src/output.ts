import { styleText } from "node:util";
import { renderTable, type TableColumn } from "./format/table.js";

type Style = Parameters<typeof styleText>[0];

/**
 * The one output writer: data to stdout, messages to stderr, colours only on a
 * TTY without NO_COLOR, `--json` for machines. Commands hand it their result
 * as JSON and as a text renderer (`result`); which one is printed is decided
 * here, not in each command.
 */
export class Output {
  readonly #json: boolean;
  readonly #color: boolean;
  readonly #stdout: NodeJS.WritableStream;
  readonly #stderr: NodeJS.WritableStream;

  constructor(options: { json?: boolean; stdout?: NodeJS.WriteStream; stderr?: NodeJS.WriteStream } = {}) {
    this.#json = options.json ?? false;
    const stdout = options.stdout ?? process.stdout;
    this.#stdout = stdout;
    this.#stderr = options.stderr ?? process.stderr;
    this.#color = Boolean(stdout.isTTY) && !process.env["NO_COLOR"] && process.env["TERM"] !== "dumb";
  }

  /** The writer of a command that has a `--json` option. */
  static for(options: { json?: boolean | undefined }): Output {
    return new Output({ json: Boolean(options.json) });
  }

  /** A command's result: `json` with --json, else what `text` prints for people. */
  result(json: unknown, text: () => void): void {
    if (this.#json) this.data(json);
    else text();
  }

  /** One entry of a stream (`ccp db logs --follow`): a JSON line with --json (NDJSON), else what `text` prints. */
  entry(json: unknown, text: () => void): void {
    if (this.#json) this.line(JSON.stringify(json));
    else text();
  }

  /** Progress for people while a command runs; nothing with --json, where only the result is printed. */
  progress(text: () => void): void {
    if (!this.#json) text();
  }

  /** A psql-style table (stdout). */
  table(columns: readonly TableColumn[], rows: readonly (readonly string[])[]): void {
    for (const line of renderTable(columns, rows)) this.line(line);
  }

  style(style: Style, text: string): string {
    return this.#color ? styleText(style, text) : text;
  }

  /** A line of data (stdout). */
  line(text = ""): void {
    this.#stdout.write(`${text}\n`);
  }

  /** A value as JSON (stdout). */
  data(value: unknown): void {
    this.#stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  success(text: string): void {
    this.line(`${this.style("green", "✓")} ${text}`);
  }

  /** A message about the run, not data (stderr). */
  note(text: string): void {
    this.#stderr.write(`${text}\n`);
  }

  /** Aligned `label value` rows, as in seed 000's create/info blocks. */
  fields(rows: readonly (readonly [string, string])[], indent = "  "): void {
    const width = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) this.line(`${indent}${this.style("dim", k.padEnd(width))}  ${v}`);
  }

  error(message: string, hint?: string): void {
    this.#stderr.write(`${this.style("red", "✗")} ${message}\n`);
    if (hint) this.#stderr.write(`  ${this.style("dim", hint)}\n`);
  }
}
