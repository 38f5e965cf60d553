import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { usageError } from "../../errors.js";
import { execSql, type ExecOutcome } from "../../execute.js";
import { alignFor, cellText } from "../../format/values.js";
import { jsonOption, sqlTargetOptions } from "../../options.js";
import { Output } from "../../output.js";
import { resolveExecTarget } from "../../target.js";

export function register(db: Command): Command {
  return sqlTargetOptions(
    db
      .command("exec")
      .description("run SQL on the project's database (.cluster/config.json) and print the result")
      .argument("[sql]", "the SQL; omit it to read -f FILE or stdin")
      .option("-f, --file <file>", "read the SQL from a file (- for stdin)"),
  )
    .addOption(jsonOption())
    .action(async (sql: string | undefined, o: { file?: string; dbId?: string; token?: string; database?: string; json?: boolean }) => {
      const target = resolveExecTarget(o);
      printExec(Output.for(o), await execSql(target, await readSql(sql, o)));
    });
}

const SQL_SOURCES_HINT = 'Pass the SQL as an argument (ccp db exec "SELECT 1"), with -f FILE, or on stdin.';

/** The SQL: the argument, `-f FILE` (`-` for stdin), or stdin when it is not a terminal. */
export async function readSql(arg: string | undefined, options: { file?: string | undefined }, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (arg !== undefined && options.file !== undefined) throw usageError("Give the SQL either as an argument or with -f, not both.");
  let sql: string;
  if (arg !== undefined) sql = arg;
  else if (options.file !== undefined && options.file !== "-") {
    try {
      sql = readFileSync(options.file, "utf8");
    } catch (err) {
      throw usageError(`Cannot read ${options.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}).`, SQL_SOURCES_HINT);
    }
  } else if (options.file === "-" || !stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
    sql = Buffer.concat(chunks).toString("utf8");
  } else {
    throw usageError("No SQL to run.", SQL_SOURCES_HINT);
  }
  if (sql.trim() === "") throw usageError("No SQL to run: the SQL given is empty.", SQL_SOURCES_HINT);
  return sql;
}

/** Commands whose count is "rows affected" rather than rows returned. */
const WRITES = new Set(["INSERT", "UPDATE", "DELETE", "MERGE", "COPY"]);

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

export function printExec(out: Output, r: ExecOutcome): void {
  const { result } = r;
  // With --json: the gateway's own JSON for /execute.
  const wire: Record<string, unknown> = { command: result.command, rows_affected: result.rowsAffected };
  if (result.rows) wire["rows"] = result.rows;
  if (result.fields) wire["fields"] = result.fields.map((f) => ({ name: f.name, type_oid: f.typeOid }));
  out.result(wire, () => printExecText(out, r));
}

function printExecText(out: Output, r: ExecOutcome): void {
  const { result } = r;
  const timing = out.style("dim", `${Math.round(r.ms)}ms`);
  out.line();
  if (result.rows && result.fields) {
    const fields = result.fields;
    out.table(
      fields.map((f) => ({ name: f.name, align: alignFor(f.typeOid) })),
      // Rows are objects keyed by name; a repeated column name shows the last value, as the gateway sends it.
      result.rows.map((row) => fields.map((f) => cellText(row[f.name] ?? null, f.typeOid))),
    );
    out.line();
    if (WRITES.has(result.command)) {
      out.line(`${plural(result.rowsAffected, "row affected", "rows affected")} · ${timing}`);
    } else {
      out.line(`(${plural(result.rows.length, "row", "rows")})`);
      out.line();
      out.line(timing);
    }
  } else if (WRITES.has(result.command) || result.command === "SELECT") {
    out.line(`${plural(result.rowsAffected, "row affected", "rows affected")} · ${timing}`);
  } else {
    out.line(`${result.command} · ${timing}`);
  }
}
