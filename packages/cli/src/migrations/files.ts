import { createHash } from "node:crypto";
import { readdirSync, readFileSync, type Dirent } from "node:fs";
import path from "node:path";

/**
 * Migration files: `NNN_name.sql` (applied by `ccp db migrate`) and
 * `NNN_name.down.sql` (its revert, used by `ccp db rollback`). The number
 * orders them; the whole file name is the key recorded in `_ccp_migrations`.
 */
const MIGRATION_FILE = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_-]*)\.sql$/;
const DOWN_FILE = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_-]*)\.down\.sql$/;

/** First line of a file that must run outside a transaction (CREATE INDEX CONCURRENTLY, …). */
export const NO_TRANSACTION_MARKER = "-- ccp:no-transaction";

export interface SqlFile {
  /** File name, e.g. `001_create_users.sql`. */
  readonly name: string;
  readonly path: string;
  /** The text sent to Postgres (without a UTF-8 byte order mark). */
  readonly sql: string;
  /** sha256 of the file's bytes, hex. */
  readonly checksum: string;
  /** The first line is `-- ccp:no-transaction`. */
  readonly noTransaction: boolean;
}

export interface MigrationFile extends SqlFile {
  readonly number: number;
  /** Its revert, `NNN_name.down.sql`, if there is one. */
  readonly down: SqlFile | undefined;
}

export interface MigrationDir {
  readonly dir: string;
  /** In apply order: by number. */
  readonly migrations: readonly MigrationFile[];
  /** Down files by the name of the migration they revert (`001_x.sql`), including those whose migration file is gone. */
  readonly downs: ReadonlyMap<string, SqlFile>;
  /** Entries that are neither a migration nor a down file, to be reported. */
  readonly ignored: readonly string[];
  /** Down files without a migration file of the same name (still usable by rollback). */
  readonly orphanDowns: readonly string[];
}

/** The reasons a migrations directory cannot be used. */
export class MigrationDirError extends Error {
  readonly kind: "missing" | "not_a_directory" | "duplicate_number";
  readonly files: readonly string[];
  constructor(kind: MigrationDirError["kind"], message: string, files: readonly string[] = []) {
    super(message);
    this.name = "MigrationDirError";
    this.kind = kind;
    this.files = files;
  }
}

export function checksumOf(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** An in-memory file, for {@link parseMigrationDir}. */
export interface FileEntry {
  readonly name: string;
  readonly isFile: boolean;
  /** Read only for names that look like migrations. */
  readonly read: () => Buffer;
}

export function sqlFile(name: string, filePath: string, bytes: Buffer): SqlFile {
  let text = bytes.toString("utf8");
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const firstLine = /^[^\r\n]*/.exec(text)?.[0] ?? "";
  return { name, path: filePath, sql: text, checksum: checksumOf(bytes), noTransaction: firstLine.trim() === NO_TRANSACTION_MARKER };
}

/** Classify the entries of a migrations directory (pure apart from `read`). */
export function parseMigrationDir(dir: string, entries: readonly FileEntry[]): MigrationDir {
  const ups: { number: number; file: SqlFile }[] = [];
  const downs = new Map<string, SqlFile>();
  const ignored: string[] = [];
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (e.name.startsWith(".")) continue; // .gitkeep, editor swap files
    const down = DOWN_FILE.exec(e.name);
    const up = down ? null : MIGRATION_FILE.exec(e.name);
    if (!e.isFile || (!down && !up)) {
      ignored.push(e.isFile ? e.name : `${e.name}/`);
      continue;
    }
    const file = sqlFile(e.name, path.join(dir, e.name), e.read());
    if (down) downs.set(`${down[1]}_${down[2]}.sql`, file);
    else ups.push({ number: Number((up as RegExpExecArray)[1]), file });
  }
  ups.sort((a, b) => a.number - b.number || (a.file.name < b.file.name ? -1 : 1));
  const byNumber = new Map<number, string[]>();
  for (const u of ups) byNumber.set(u.number, [...(byNumber.get(u.number) ?? []), u.file.name]);
  const dups = [...byNumber.values()].filter((names) => names.length > 1);
  if (dups.length > 0) {
    const files = dups.flat();
    throw new MigrationDirError("duplicate_number", `Two migrations share a number: ${dups.map((d) => d.join(" and ")).join("; ")}.`, files);
  }
  const migrations = ups.map((u) => ({ ...u.file, number: u.number, down: downs.get(u.file.name) }));
  const upNames = new Set(migrations.map((m) => m.name));
  const orphanDowns = [...downs.entries()].filter(([up]) => !upNames.has(up)).map(([, d]) => d.name);
  return { dir, migrations, downs, ignored, orphanDowns };
}

/** Read a migrations directory. Throws {@link MigrationDirError} when it is missing or has duplicate numbers. */
export function readMigrationDir(dir: string): MigrationDir {
  let dirents: Dirent[];
  try {
    dirents = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new MigrationDirError("missing", `No migrations directory at ${dir}.`);
    if (code === "ENOTDIR") throw new MigrationDirError("not_a_directory", `${dir} is not a directory.`);
    throw err;
  }
  return parseMigrationDir(
    dir,
    dirents.map((d) => ({ name: d.name, isFile: d.isFile(), read: () => readFileSync(path.join(dir, d.name)) })),
  );
}

/** `Add Posts!` → `add_posts`; empty when nothing usable is left. */
export function sanitizeMigrationName(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/_+/g, "_")
    .replace(/^_+|_+$/g, "");
}

/** The file name `ccp db migrate new` creates: the next number, zero-padded to 3. */
export function nextMigrationFileName(existing: readonly { number: number }[], name: string): string {
  const next = existing.reduce((max, m) => Math.max(max, m.number), 0) + 1;
  return `${String(next).padStart(3, "0")}_${name}.sql`;
}

/** The header of a new migration file. */
export function newMigrationTemplate(fileName: string, now: Date): string {
  const down = fileName.replace(/\.sql$/, ".down.sql");
  return [
    `-- ${fileName}, created ${now.toISOString()}`,
    "--",
    "-- Runs once, in one transaction together with its row in _ccp_migrations:",
    "-- if any statement fails, nothing of this file is committed. Several",
    "-- statements and dollar-quoted ($$) PL/pgSQL bodies are fine.",
    `-- To revert it with \`ccp db rollback\`, write ${down}.`,
    "-- For a statement that cannot run in a transaction (CREATE INDEX CONCURRENTLY),",
    `-- make the first line \`${NO_TRANSACTION_MARKER}\` and keep that statement alone in the file.`,
    "",
    "",
  ].join("\n");
}
