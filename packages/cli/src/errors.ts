/**
 * The CLI's error type: what went wrong, what to do next, and a distinct exit
 * code. API errors arrive with a stable `code`; they are mapped here and only here.
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  unauthorized: 4,
  conflict: 5,
  unavailable: 6,
  declined: 7,
  /** Postgres rejected the SQL (syntax error, constraint violation, …). */
  sqlError: 8,
  /** `ccp run`: the command to run does not exist (as a shell says). */
  commandNotFound: 127,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const EXIT_BY_API_CODE: Record<string, ExitCode> = {
  invalid_request: EXIT.usage,
  invalid_name: EXIT.usage,
  payload_too_large: EXIT.usage,
  not_found: EXIT.notFound,
  unauthorized: EXIT.unauthorized,
  name_taken: EXIT.conflict,
  conflict: EXIT.conflict,
  not_ready: EXIT.unavailable,
};

export class CliError extends Error {
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  readonly code: string;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, options: { hint?: string | undefined; exitCode?: ExitCode; details?: Record<string, unknown> } = {}) {
    super(message);
    this.name = "CliError";
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? EXIT_BY_API_CODE[code] ?? EXIT.failure;
    this.details = options.details ?? {};
  }
}

export function usageError(message: string, hint?: string): CliError {
  return new CliError("usage", message, { hint, exitCode: EXIT.usage });
}
