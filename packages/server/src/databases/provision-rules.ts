import { CcpError } from "../errors.js";

/**
 * Seed 003's provisioning rules (`ccp db provision <name> -U <username>`): the
 * instance name and the owner's user name are 3–16 characters of lowercase
 * letters, digits and underscores; the password has 8 or more characters.
 * Stricter than `db create`'s names (no "-", at most 16), as 003 asks.
 */
export const PROVISION_NAME_PATTERN = /^[a-z0-9_]{3,16}$/;
export const MIN_PASSWORD_LENGTH = 8;
/** Far above any real password; keeps SCRAM hashing and request bodies bounded. */
export const MAX_PASSWORD_LENGTH = 1024;

/**
 * Role names an owner may not take: Postgres's own (`postgres` is the usual
 * bootstrap superuser; `public`, `none` and the CURRENT_USER family are
 * keywords in role position, so GRANT … TO them means something else), ccp's
 * platform roles, and the prefixes both reserve.
 */
const RESERVED_ROLES = new Set(["postgres", "public", "none", "all", "current_user", "current_role", "session_user", "user", "ccp_admin"]);
const RESERVED_PREFIXES = ["pg_", "ccp_"];

const RULES = "3–16 characters of lowercase letters, digits and underscores";

export function validateProvisionName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0) {
    throw new CcpError("invalid_name", "A database instance name is required.", { hint: "For example: `ccp db provision my_app_db -U app_owner`." });
  }
  if (!PROVISION_NAME_PATTERN.test(name)) {
    throw new CcpError("invalid_name", `Invalid database instance name "${name}": use ${RULES}.`, { hint: "For example: my_app_db" });
  }
  return name;
}

export function validateOwnerRole(owner: unknown): string {
  if (typeof owner !== "string" || owner.length === 0) {
    throw new CcpError("invalid_name", "A username is required.", { hint: "Pass one with -U, e.g. `ccp db provision my_app_db -U app_owner`." });
  }
  if (!PROVISION_NAME_PATTERN.test(owner)) {
    throw new CcpError("invalid_name", `Invalid username "${owner}": use ${RULES}.`, { hint: "For example: app_owner" });
  }
  const prefix = RESERVED_PREFIXES.find((p) => owner.startsWith(p));
  if (RESERVED_ROLES.has(owner) || prefix) {
    throw new CcpError("invalid_name", `The username "${owner}" is reserved${prefix ? ` (names starting with "${prefix}" are)` : ""}: choose another.`, {
      hint: "For example: app_owner",
    });
  }
  return owner;
}

export function validatePassword(password: unknown): string {
  if (typeof password !== "string" || password.length === 0) {
    throw new CcpError("invalid_request", "A password is required.", { hint: "Type it at the prompt, or pipe it in with --password-stdin." });
  }
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    throw new CcpError("invalid_request", `The password is too short: use ${MIN_PASSWORD_LENGTH} or more characters.`);
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new CcpError("invalid_request", `The password is too long: use at most ${MAX_PASSWORD_LENGTH} characters.`);
  }
  if (password.includes("\u0000")) throw new CcpError("invalid_request", "The password cannot contain NUL characters.");
  return password;
}

export interface ProvisionSpec {
  readonly name: string;
  readonly owner: string;
  readonly password: string;
}

/** All three rules, in the order a user reads the command line: name, username, password. */
export function validateProvision(name: unknown, owner: unknown, password: unknown): ProvisionSpec {
  return { name: validateProvisionName(name), owner: validateOwnerRole(owner), password: validatePassword(password) };
}

