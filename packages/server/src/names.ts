import { CcpError } from "./errors.js";

/** Seed 000 names: 3–32 characters of lowercase letters, digits, `-` and `_`, starting with a letter. */
export const DATABASE_NAME_PATTERN = /^[a-z][a-z0-9_-]{2,31}$/;

export function validateDatabaseName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0) {
    throw new CcpError("invalid_name", "A database name is required.", {
      hint: "Pass one with --name, e.g. `ccp db create --name my-app-db`.",
    });
  }
  if (!DATABASE_NAME_PATTERN.test(name)) {
    throw new CcpError(
      "invalid_name",
      `Invalid database name "${name}": use 3–32 characters of lowercase letters, digits, "-" and "_", starting with a letter.`,
      { hint: "For example: my-app-db" },
    );
  }
  return name;
}
