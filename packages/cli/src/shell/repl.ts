import { createInterface } from "node:readline";
import type { Output } from "../output.js";
import { displayWidth } from "../format/width.js";
import { historyFile, HISTORY_SIZE, loadHistory, saveHistory } from "./history.js";
import { page, pagerCommand } from "./pager.js";
import type { Outcome, Session } from "./session.js";
import { SqlSplitter } from "./statements.js";
import { EXIT, type ExitCode } from "../errors.js";

export const PROMPT = "› ";
export const CONTINUATION = "… ";

export interface HeaderInfo {
  readonly databaseId: string;
  readonly database: string;
  readonly host: string;
}

/** Seed 000's box: rounded corners, the command, then database and host. */
export function headerBox(info: HeaderInfo, out: Output): string[] {
  const lines = [`${out.style("bold", ">_")} ccp db connect (${info.databaseId})`, "", `${out.style("dim", "database:")} ${info.database}`, `${out.style("dim", "host:")} ${info.host}`];
  const plain = [`>_ ccp db connect (${info.databaseId})`, "", `database: ${info.database}`, `host: ${info.host}`];
  const inner = Math.max(48, ...plain.map(displayWidth));
  return [
    `╭${"─".repeat(inner + 2)}╮`,
    ...lines.map((l, i) => `│ ${l}${" ".repeat(inner - displayWidth(plain[i] as string))} │`),
    `╰${"─".repeat(inner + 2)}╯`,
  ];
}

/**
 * Lines read from stdin when it is not a terminal: statements and
 * meta-commands run in order, without prompts; the first failure ends the
 * run with its exit code (8 for SQL errors), so scripts can rely on it.
 */
export async function runScript(session: Session, input: NodeJS.ReadableStream = process.stdin): Promise<ExitCode> {
  const rl = createInterface({ input, terminal: false, crlfDelay: Infinity });
  const splitter = new SqlSplitter();
  for await (const line of rl) {
    const outcome = isMeta(line, splitter) ? await session.meta(line) : await runAll(session, splitter.push(line));
    if (!outcome.ok) {
      rl.close();
      return outcome.exitCode;
    }
    if (outcome.quit) {
      rl.close();
      return EXIT.ok;
    }
  }
  // psql runs a last statement without its `;` at the end of a script.
  const rest = splitter.flush();
  if (rest !== undefined) {
    const outcome = await session.statement(rest);
    if (!outcome.ok) return outcome.exitCode;
  }
  return EXIT.ok;
}

/**
 * The interactive shell on a terminal, with node:readline doing the line
 * editing: arrows, history (kept per database between sessions), Ctrl+C
 * (cancels a running statement, clears the input, or quits on an empty one),
 * Ctrl+D (quits).
 */
export async function runInteractive(session: Session, options: { out: Output; header: HeaderInfo; env?: NodeJS.ProcessEnv }): Promise<ExitCode> {
  const { out } = options;
  for (const line of headerBox(options.header, out)) out.line(line);
  out.line(out.style("dim", "Enter SQL (end with ;) · \\? for help · \\q to quit"));
  out.line();

  const file = historyFile(options.header.databaseId, options.env);
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: true,
    prompt: PROMPT,
    history: loadHistory(file),
    historySize: HISTORY_SIZE,
    removeHistoryDuplicates: true,
  });
  rl.on("history", (history) => {
    try {
      saveHistory(file, history);
    } catch {
      // An unwritable data dir costs the history, not the session.
    }
  });

  const splitter = new SqlSplitter();
  let busy = false;
  let closing = false;
  const prompt = () => {
    rl.setPrompt(splitter.pending ? CONTINUATION : PROMPT);
    rl.prompt();
  };
  rl.on("SIGINT", () => {
    if (busy) {
      // As psql: Ctrl+C while a statement runs cancels it; the statement's outcome reports it.
      if (session.cancel()) process.stdout.write("^CCancel request sent\n");
      return;
    }
    if (rl.line === "" && !splitter.pending) {
      closing = true;
      process.stdout.write("\n");
      rl.close();
      return;
    }
    // As psql: show ^C after the input, drop it and any pending statement, prompt afresh.
    rl.write(null, { ctrl: true, name: "e" });
    process.stdout.write("^C\n");
    rl.write(null, { ctrl: true, name: "u" });
    splitter.reset();
    prompt();
  });
  rl.on("close", () => {
    if (!closing) process.stdout.write("\n"); // Ctrl+D leaves the cursor after the prompt
  });

  prompt();
  for await (const line of rl) {
    busy = true;
    const outcome = isMeta(line, splitter) ? await session.meta(line) : await runAll(session, splitter.push(line), () => out.line());
    busy = false;
    if (outcome.ok && outcome.quit) {
      closing = true;
      rl.close();
      break;
    }
    prompt();
  }
  return EXIT.ok;
}

/** A `\…` line outside a string or comment is a meta-command (a pending statement stays pending, as in psql). */
function isMeta(line: string, splitter: SqlSplitter): boolean {
  return !splitter.inLiteral && line.trimStart().startsWith("\\");
}

async function runAll(session: Session, statements: readonly string[], between?: () => void): Promise<Outcome> {
  for (const [i, sql] of statements.entries()) {
    if (i > 0) between?.();
    const outcome = await session.statement(sql);
    if (!outcome.ok) return outcome;
  }
  return { ok: true };
}

/** Print lines, through the pager when stdout is a terminal and they do not fit on it. */
export function printer(out: Output, env: NodeJS.ProcessEnv = process.env): (lines: readonly string[]) => Promise<void> {
  return async (lines) => {
    const rows = process.stdout.isTTY ? process.stdout.rows : undefined;
    const command = pagerCommand(env);
    if (rows !== undefined && command !== undefined && lines.length > rows - 2) {
      if (await page(command, `${lines.join("\n")}\n`)) return;
    }
    for (const line of lines) out.line(line);
  };
}
