/**
 * The one error family of ccpd. Every failure a caller can cause is a CcpError
 * with a stable `code`; the HTTP layer maps it to a response in exactly one place
 * (api/app.ts) and the CLI maps codes to exit codes in one place too.
 */
export type ErrorCode =
  | "invalid_request"
  | "invalid_name"
  | "name_taken"
  | "not_found"
  | "unauthorized"
  | "forbidden"
  | "not_ready"
  | "conflict"
  | "payload_too_large"
  /** A write to a database that is read-only for being over its storage limit. */
  | "storage_quota_exceeded"
  | "internal";

const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_name: 400,
  name_taken: 409,
  not_found: 404,
  unauthorized: 401,
  forbidden: 403,
  not_ready: 503,
  conflict: 409,
  payload_too_large: 413,
  storage_quota_exceeded: 403,
  internal: 500,
};

export interface CcpErrorOptions {
  hint?: string;
  /** Extra fields copied into the JSON error body (e.g. Postgres error fields). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class CcpError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: CcpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CcpError";
    this.code = code;
    this.status = STATUS[code];
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  toJSON(): { error: Record<string, unknown> } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.hint === undefined ? {} : { hint: this.hint }),
        ...this.details,
      },
    };
  }
}

export function isCcpError(err: unknown): err is CcpError {
  return err instanceof CcpError;
}

/** The JSON schema of every error answer, `{ error: { code, message, hint?, … } }` (CcpError.toJSON), for the OpenAPI document. */
export const errorSchema = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      additionalProperties: true,
      properties: { code: { type: "string" }, message: { type: "string" }, hint: { type: "string" } },
    },
  },
} as const;
