/**
 * One error type for all of behalf. The `code` is the API (stable, documented in the README);
 * the message is for people. Messages never contain a token, code, secret or key.
 */
export const ERROR_CODES = {
  // Bad input from an app or a backend.
  INVALID_REQUEST: { status: 400, exit: 64 },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, exit: 64 },
  PAYLOAD_TOO_LARGE: { status: 413, exit: 64 },
  CSRF_HEADER_REQUIRED: { status: 403, exit: 64 },
  CSRF_TOKEN_INVALID: { status: 403, exit: 64 },
  ORIGIN_NOT_ALLOWED: { status: 403, exit: 64 },
  INSECURE_TRANSPORT: { status: 403, exit: 64 },
  NOT_FOUND: { status: 404, exit: 66 },
  HOST_NOT_ALLOWED: { status: 403, exit: 64 },
  RATE_LIMITED: { status: 429, exit: 75 },
  // Service API authentication.
  UNAUTHENTICATED: { status: 401, exit: 77 },
  // Sign-in outcomes that come from Google's answer.
  CODE_INVALID: { status: 400, exit: 65 },
  REDIRECT_URI_MISMATCH: { status: 400, exit: 65 },
  ID_TOKEN_INVALID: { status: 401, exit: 65 },
  SECURITY_EVENT_INVALID: { status: 400, exit: 65 },
  HD_NOT_ALLOWED: { status: 403, exit: 65 },
  // Per-user state.
  USER_NOT_FOUND: { status: 404, exit: 66 },
  WEBHOOK_NOT_FOUND: { status: 404, exit: 66 },
  NEEDS_CONSENT: { status: 409, exit: 65 },
  /** Google refused a call as the user with 403 insufficient_scope: they withheld a scope it needs. */
  SCOPE_NOT_GRANTED: { status: 403, exit: 77 },
  // The deployment, Google or the store.
  CLIENT_MISCONFIGURED: { status: 502, exit: 78 },
  GOOGLE_UNAVAILABLE: { status: 503, exit: 75 },
  GOOGLE_ERROR: { status: 502, exit: 69 },
  STORE_UNAVAILABLE: { status: 503, exit: 75 },
  CONFIG_INVALID: { status: 500, exit: 78 },
  INTERNAL: { status: 500, exit: 70 },
} as const satisfies Record<string, { status: number; exit: number }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Codes after which the same request may succeed if simply retried later. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set([
  'GOOGLE_UNAVAILABLE',
  'STORE_UNAVAILABLE',
  'RATE_LIMITED',
]);

export interface GoogleErrorFields {
  /** Google's `error` string, e.g. `invalid_grant`. Never contains a token. */
  error: string;
  /** Google's `error_description`, e.g. `Bad Request`. */
  errorDescription?: string;
  /** Google's `error_subtype`, e.g. `invalid_rapt` (a Workspace session-control reauthentication). */
  errorSubtype?: string;
  /** HTTP status Google answered with. */
  status?: number;
}

export interface BehalfErrorOptions {
  cause?: unknown;
  /** A finer, stable reason within the code (e.g. `expired` for ID_TOKEN_INVALID). */
  reason?: string | undefined;
  google?: GoogleErrorFields | undefined;
  /** Seconds after which a retry makes sense (sent as Retry-After). */
  retryAfter?: number | undefined;
  /** Extra, non-secret fields for the JSON body. */
  details?: Record<string, unknown> | undefined;
}

export class BehalfError extends Error {
  override readonly name = 'BehalfError';
  readonly code: ErrorCode;
  readonly reason: string | undefined;
  readonly google: GoogleErrorFields | undefined;
  readonly retryAfter: number | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: BehalfErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reason = options.reason;
    this.google = options.google;
    this.retryAfter = options.retryAfter;
    this.details = options.details;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }

  /** The JSON body the HTTP API answers with. */
  toJSON(): Record<string, unknown> {
    return {
      error: this.code,
      message: this.message,
      ...(this.reason === undefined ? {} : { reason: this.reason }),
      ...(this.retryable ? { retryable: true } : {}),
      ...(this.google === undefined
        ? {}
        : {
            google_error: this.google.error,
            ...(this.google.errorDescription === undefined
              ? {}
              : { google_error_description: this.google.errorDescription }),
            ...(this.google.errorSubtype === undefined
              ? {}
              : { google_error_subtype: this.google.errorSubtype }),
          }),
      ...this.details,
    };
  }
}

export function isBehalfError(value: unknown): value is BehalfError {
  return value instanceof BehalfError;
}
