import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { CliError, EXIT, usageError } from "../errors.js";
import type { Output } from "../output.js";
import { newMigrationTemplate, nextMigrationFileName, sanitizeMigrationName } from "./files.js";
import { displayPath, loadMigrationDir } from "./report.js";

/** `ccp db migrate new NAME`: create the next numbered file with a comment header. Resolves to its path. */
export function createMigration(dirPath: string, rawName: string, now = new Date()): string {
  const name = sanitizeMigrationName(rawName);
  if (!name) throw usageError(`"${rawName}" has no letters or digits to name a migration with.`, "For example: ccp db migrate new create_users");
  mkdirSync(dirPath, { recursive: true });
  const dir = loadMigrationDir(dirPath);
  const fileName = nextMigrationFileName(dir.migrations, name);
  const file = path.join(dirPath, fileName);
  try {
    writeFileSync(file, newMigrationTemplate(fileName, now), { flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new CliError("conflict", `${displayPath(file)} already exists.`, { exitCode: EXIT.conflict });
    throw err;
  }
  return file;
}

export function printNewMigration(out: Output, file: string): void {
  out.result({ file: displayPath(file) }, () => out.success(`Created ${displayPath(file)}`));
}
