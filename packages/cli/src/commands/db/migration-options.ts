import { usageError } from "../../errors.js";

/** Options of `db migrate` and `db rollback` needed when the CLI registers them, apart from the commands (loaded when they run). */
export const DEFAULT_MIGRATIONS_DIR = "migrations";

export function parseSteps(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw usageError(`--steps takes a positive whole number, got "${value}".`);
  return n;
}
