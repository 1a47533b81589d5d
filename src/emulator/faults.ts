import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { NO_STORE, sendApiError, sendOAuthError } from './errors.js';
import type { EmulatorState } from './state.js';

export const FaultInput = z
  .object({
    path: z.string().min(1).max(512),
    status: z.number().int().min(400).max(599).optional(),
    error: z.string().max(100).optional(),
    error_description: z.string().max(500).optional(),
    /**
     * On the OAuth paths, Google's `error_subtype` beside `error` (e.g. `invalid_grant` with
     * `invalid_rapt`: https://developers.google.com/identity/protocols/oauth2#expiration).
     */
    error_subtype: z.string().max(100).optional(),
    /** On API paths, the `error.errors[0].domain` (default `global`; `usageLimits` for quota errors). */
    domain: z.string().max(100).optional(),
    /** On API paths, the envelope's `error.details` array (https://cloud.google.com/apis/design/errors). */
    details: z.array(z.record(z.string(), z.unknown())).max(20).optional(),
    /** Any JSON object, sent as the whole error body with `status` (wins over the fields above). */
    body: z.record(z.string(), z.unknown()).optional(),
    latency_ms: z.number().int().min(0).max(120_000).optional(),
    drop: z.boolean().optional(),
    count: z.number().int().min(1).max(1_000_000).optional(),
    rate: z.number().min(0).max(1).optional(),
    /** Seconds for the Retry-After header; 429 and 503 send 1 unless given, and null sends none. */
    retry_after: z.number().int().min(0).max(3600).nullable().optional(),
    /**
     * The token endpoint answers normally, but the ID token it issues has these claims replaced
     * (a null value removes the claim): an ID token that is validly signed yet not what Google
     * would issue with this response, e.g. an `at_hash` of another access token.
     */
    id_token_claims: z.record(z.string(), z.unknown()).optional(),
  })
  .refine(
    (f) =>
      f.status !== undefined ||
      (f.body === undefined && f.details === undefined && f.error_subtype === undefined),
    'body, details and error_subtype need a status',
  );
export type Fault = z.infer<typeof FaultInput> & { remaining: number | undefined };

const OAUTH_PATHS = [
  '/token',
  '/oauth2/v4/token',
  '/oauth2/v3/token',
  '/o/oauth2/token',
  '/revoke',
  '/o/oauth2/revoke',
  '/tokeninfo',
];

/**
 * Faults for tests: a Google-shaped error status, added latency, or a dropped connection, for the
 * next N matching calls or a fraction of calls. A path matches exactly, or as a prefix ending in `*`.
 */
export class Faults {
  #faults: Fault[] = [];
  /** The requests a fault's latency_ms is holding, each with what ends its hold (see release()). */
  readonly #holds = new Map<() => void, FastifyRequest>();
  /** ID token claim overrides a served fault attached to a request (see FaultInput.id_token_claims). */
  readonly #idTokenClaims = new WeakMap<FastifyRequest, Record<string, unknown>>();

  constructor(private readonly state: EmulatorState) {}

  add(input: z.infer<typeof FaultInput>): Fault {
    const fault: Fault = { ...input, remaining: input.count ?? (input.rate === undefined ? 1 : undefined) };
    this.#faults.push(fault);
    return fault;
  }

  clear(): void {
    this.#faults = [];
  }

  list(): Fault[] {
    return this.#faults;
  }

  /**
   * End every latency hold in progress now: the held requests go on as their faults say. A test
   * that holds a call at Google with a long latency_ms releases it once it has done what had to
   * happen meanwhile, instead of hoping it was quick enough. Returns how many were held.
   */
  release(): number {
    const held = [...this.#holds.keys()];
    for (const end of held) end();
    return held.length;
  }

  /** The emulator is closing: cut the connection of every held request (its client sees it dropped). */
  dropHeld(): void {
    for (const [end, request] of [...this.#holds]) {
      request.raw.socket.destroy();
      end();
    }
  }

  #hold(request: FastifyRequest, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.#holds.delete(end);
        resolve();
      };
      const timer = setTimeout(end, ms);
      this.#holds.set(end, request);
    });
  }

  /** Claims to replace in the ID token issued for this request, if a fault asked for that. */
  idTokenClaims(request: FastifyRequest): Record<string, unknown> | undefined {
    return this.#idTokenClaims.get(request);
  }

  /** Applies a matching fault; returns true when the request has been answered (or dropped). */
  async apply(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const path = request.url.split('?')[0] ?? '';
    if (path.startsWith('/emulator/')) return false;
    const fault = this.#faults.find(
      (f) => matches(f.path, path) && (f.remaining === undefined || f.remaining > 0),
    );
    if (fault === undefined) return false;
    if (fault.rate !== undefined && Math.random() >= fault.rate) return false;
    if (fault.remaining !== undefined) fault.remaining--;
    this.#faults = this.#faults.filter((f) => f.remaining === undefined || f.remaining > 0);
    this.state.stats.faults_served++;

    if (fault.latency_ms !== undefined) await this.#hold(request, fault.latency_ms);
    if (fault.drop === true || request.raw.socket.destroyed) {
      request.raw.socket.destroy();
      return true;
    }
    if (fault.id_token_claims !== undefined) this.#idTokenClaims.set(request, fault.id_token_claims);
    if (fault.status === undefined) return false; // latency or claims only: then serve normally
    const retryAfter =
      fault.retry_after === undefined
        ? fault.status === 429 || fault.status === 503
          ? 1
          : null
        : fault.retry_after;
    if (retryAfter !== null) reply.header('retry-after', String(retryAfter));
    const oauth = OAUTH_PATHS.includes(path);
    if (fault.body !== undefined) {
      if (oauth) reply.headers(NO_STORE);
      reply.code(fault.status).type('application/json; charset=utf-8').send(fault.body);
    } else if (oauth) {
      sendOAuthError(
        reply,
        fault.status,
        fault.error ?? defaultOAuthError(fault.status),
        fault.error_description,
        fault.error_subtype,
      );
    } else {
      const message = fault.error_description ?? defaultMessage(fault.status);
      if (fault.status === 401)
        reply.header(
          'www-authenticate',
          'Bearer realm="https://accounts.google.com/", error="invalid_token"',
        );
      sendApiError(
        reply,
        fault.status,
        message,
        {
          message,
          reason: fault.error ?? defaultReason(fault.status),
          // Quota errors (429, and 403 with a rate or daily limit reason) carry the usageLimits domain
          // (https://developers.google.com/workspace/drive/api/guides/handle-errors).
          ...(fault.domain !== undefined
            ? { domain: fault.domain }
            : fault.status === 429 || USAGE_LIMIT_REASONS.has(fault.error ?? '')
              ? { domain: 'usageLimits' }
              : {}),
        },
        fault.details,
      );
    }
    return true;
  }
}

/** Drive's quota reasons, answered with domain usageLimits whatever the status. */
const USAGE_LIMIT_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'dailyLimitExceeded']);

function matches(pattern: string, path: string): boolean {
  return pattern.endsWith('*') ? path.startsWith(pattern.slice(0, -1)) : pattern === path;
}

function defaultOAuthError(status: number): string {
  if (status === 401) return 'invalid_client';
  if (status >= 500) return 'internal_failure';
  if (status === 429) return 'rate_limit_exceeded';
  return 'invalid_request';
}

function defaultReason(status: number): string {
  if (status === 401) return 'authError';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'notFound';
  if (status === 429) return 'rateLimitExceeded';
  if (status === 503) return 'backendError';
  if (status >= 500) return 'internalError';
  return 'badRequest';
}

function defaultMessage(status: number): string {
  if (status === 401) return 'Invalid Credentials';
  if (status === 429) return 'Rate Limit Exceeded';
  if (status >= 500) return 'Backend Error';
  return 'Bad Request';
}
