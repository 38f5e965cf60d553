import { CcpError } from "./errors.js";
import { DATABASE_ID_SHAPE } from "./ids.js";

/** Seed 000 names: 3–32 characters of lowercase letters, digits, `-` and `_`, starting with a letter. */
export const DATABASE_NAME_PATTERN = /^[a-z][a-z0-9_-]{2,31}$/;

/** `db-` + 12 hex digits in any case: the shape of a database id, so never a name. */
const ID_SHAPED = new RegExp(`^${DATABASE_ID_SHAPE}$`, "i");

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
  if (ID_SHAPED.test(name)) {
    // A name that reads as an id would make `ccp db info <id>` ambiguous; refuse it outright.
    throw new CcpError("invalid_name", `Invalid database name "${name}": it has the shape of a database id (db- and 12 hex digits).`, {
      hint: "Pick a name that is not db-<12 hex digits>, e.g. my-app-db.",
    });
  }
  return name;
}
