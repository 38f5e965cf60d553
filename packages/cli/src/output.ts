import { styleText } from "node:util";

type Style = Parameters<typeof styleText>[0];

/**
 * The one output writer: data to stdout, messages to stderr, colours only on a
 * TTY without NO_COLOR, `--json` for machines.
 */
export class Output {
  readonly json: boolean;
  readonly #color: boolean;
  readonly #stdout: NodeJS.WritableStream;
  readonly #stderr: NodeJS.WritableStream;

  constructor(options: { json?: boolean; stdout?: NodeJS.WriteStream; stderr?: NodeJS.WriteStream } = {}) {
    this.json = options.json ?? false;
    const stdout = options.stdout ?? process.stdout;
    this.#stdout = stdout;
    this.#stderr = options.stderr ?? process.stderr;
    this.#color = Boolean(stdout.isTTY) && !process.env["NO_COLOR"] && process.env["TERM"] !== "dumb";
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
