/**
 * The HTTP API's shapes, once: the routes validate requests with these zod schemas and declare
 * their answers with them, /openapi.json is generated from them (./openapi.ts), and the typed
 * client (src/client) takes its types from them (z.infer). A schema given an `id` by
 * {@link named} becomes a named component of the document; descriptions (`.describe()`) are
 * carried into it.
 */
import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../errors.js';
import type { SecurityAction, SecurityState } from '../risc/index.js';
import type { GrantStatus } from '../vault/index.js';
import { WEBHOOK_EVENT_TYPES } from '../webhooks/index.js';

/**
 * A named schema: `#/components/schemas/{id}` in /openapi.json. Zod's global registry is the one
 * `.describe()` writes to, so names and descriptions come from one place.
 */
function named<T extends z.ZodType>(id: string, description: string, schema: T): T {
  z.globalRegistry.add(schema, { id, description });
  return schema;
}

/** A JSON answer with its own description (a named schema's description is the component's). */
export function jsonAnswer<T extends z.ZodType>(
  description: string,
  schema: T,
): { description: string; content: { 'application/json': { schema: T } } } {
  return { description, content: { 'application/json': { schema } } };
}

const timestamp = z.iso.datetime().describe('RFC 3339 date and time, UTC.');

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * Every refusal and failure: `{"error": CODE, "message": TEXT}` and, where they apply, a finer
 * `reason`, `retryable`, Google's own `google_error` fields and non-secret details (src/errors.ts).
 */
export const ErrorBody = named(
  'Error',
  'Every error answer. `error` is the stable code (see the README); `message` is for people.',
  z.looseObject({
    error: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    reason: z.string().optional().describe('A finer, stable reason within the code.'),
    retryable: z.literal(true).optional().describe('The same request may succeed if retried later.'),
    google_error: z.string().optional().describe("Google's `error` string, when Google refused."),
    google_error_description: z.string().optional(),
  }),
);
export type ErrorBody = z.infer<typeof ErrorBody>;

// ---------------------------------------------------------------------------------------------
// Users and grants

export const GRANT_STATUSES = [
  'active',
  'revoked',
  'needs_consent',
] as const satisfies readonly GrantStatus[];
export const SECURITY_STATES = [
  'sessions_revoked',
  'tokens_revoked',
  'token_revoked',
  'account_disabled',
  'account_disabled_hijacking',
  'credential_change_required',
] as const satisfies readonly SecurityState[];
const SECURITY_ACTIONS = [
  'grant_dropped',
  'user_disabled',
  'user_enabled',
  'user_marked',
  'user_deleted',
  'verified',
  'no_such_user',
  'ignored',
] as const satisfies readonly SecurityAction[];
/** True when a list names every value of its type: a value added to the type fails to compile. */
type Exhaustive<List extends readonly string[], Type extends string> = [Type] extends [List[number]]
  ? true
  : never;
const exhaustive: [
  Exhaustive<typeof GRANT_STATUSES, GrantStatus>,
  Exhaustive<typeof SECURITY_STATES, SecurityState>,
  Exhaustive<typeof SECURITY_ACTIONS, SecurityAction>,
] = [true, true, true];
void exhaustive;

/** A Google account's `sub` in a path: printable ASCII, as Google's are. */
const Sub = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7e]+$/);
export const SubParams = z.object({ sub: Sub });

export const UserProfile = named(
  'UserProfile',
  "What Google said about the user in their last verified ID token (profile claims may be null when the user's scopes leave them out).",
  z.object({
    sub: z.string(),
    email: z.string().nullable(),
    email_verified: z.boolean(),
    name: z.string().nullable(),
    given_name: z.string().nullable(),
    family_name: z.string().nullable(),
    picture: z.string().nullable(),
    locale: z.string().nullable(),
    hd: z.string().nullable(),
  }),
);
export type UserProfile = z.infer<typeof UserProfile>;

export const GrantSummary = named(
  'GrantSummary',
  "The user's grant to this deployment's OAuth client.",
  z.object({
    status: z.enum(GRANT_STATUSES),
    offline_access: z.boolean().describe('A refresh token is stored and usable.'),
    scopes: z.array(z.string()),
    offline_access_expires_at: z
      .string()
      .nullable()
      .describe(
        "When Google said the refresh token stops working (a Testing-mode client's 7 days, or time-based access), or null.",
      ),
  }),
);

export const User = named(
  'User',
  'A user as GET /v1/users/{sub} and GET /v1/users answer: profile, grant, security state and times; never a token.',
  z.object({
    user: UserProfile,
    grant: GrantSummary.nullable(),
    security: z
      .object({ state: z.enum(SECURITY_STATES), at: timestamp })
      .nullable()
      .describe('What Google last reported about the account (Cross-Account Protection).'),
    created_at: timestamp,
    updated_at: timestamp,
    last_sign_in_at: timestamp,
  }),
);
export type User = z.infer<typeof User>;

/** Most users one page of GET /v1/users holds. */
export const MAX_USERS_PAGE = 200;

export const UserListQuery = z.object({
  status: z.enum(GRANT_STATUSES).optional().describe('Only users whose grant has this status.'),
  email: z
    .string()
    .max(320)
    .optional()
    .describe('Only users whose email starts with this (ASCII letters in any case).'),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_USERS_PAGE)
    .default(50)
    .describe(`Users per page, 1 to ${MAX_USERS_PAGE}.`),
  cursor: z
    .string()
    .max(2100)
    .optional()
    .describe("A previous page's `next_cursor`, with the same status and email."),
});
export type UserListQuery = z.input<typeof UserListQuery>;

export const UserList = named(
  'UserList',
  'One page of users, in a stable order; `next_cursor` is null on the last page.',
  z.object({ users: z.array(User), next_cursor: z.string().nullable() }),
);
export type UserList = z.infer<typeof UserList>;

export const AccessToken = named(
  'AccessToken',
  "A fresh Google access token for the user (refreshed by behalf when needed). Send it only to Google's APIs.",
  z.object({
    access_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_at: timestamp,
    expires_in: z.number().int().min(0).describe('Seconds until it expires.'),
    scopes: z.array(z.string()),
  }),
);
export type AccessToken = z.infer<typeof AccessToken>;

export const SignOutResult = z
  .object({ signed_out: z.literal(true), revoked_at_google: z.boolean() })
  .describe('Signed out: the grant is revoked here, and at Google when it still held a token.');
export type SignOutResult = z.infer<typeof SignOutResult>;

export const DeleteUserResult = z
  .object({ deleted: z.literal(true), revoked_at_google: z.boolean() })
  .describe('Deleted: everything stored about the user is erased.');
export type DeleteUserResult = z.infer<typeof DeleteUserResult>;

// ---------------------------------------------------------------------------------------------
// Sign-in

export const SignInBody = z.object({
  code: z.string({ error: 'code is required and must be a string.' }),
  redirect_uri: z.string().max(2048).optional(),
  code_verifier: z.string().max(256).optional(),
});

export const SignInHeaders = z.looseObject({
  'x-requested-with': z
    .string()
    .regex(/\S/)
    .describe('Any non-empty value (e.g. XMLHttpRequest): a cross-site form cannot set it.'),
});

export const SignInResult = named(
  'SignInResult',
  'The signed-in user, the state of their grant, and what the app should do next.',
  z.object({
    user: UserProfile,
    created: z.boolean().describe("True on the user's first sign-in (answered with 201)."),
    grant: z.object({
      status: z.enum(GRANT_STATUSES),
      offline_access: z.boolean(),
      refresh_token_received: z.boolean(),
      scopes: z.array(z.string()),
      missing_scopes: z.array(z.string()),
    }),
    action: z.enum(['none', 'request_scopes', 'force_consent']),
  }),
);
export type SignInResult = z.infer<typeof SignInResult>;

// ---------------------------------------------------------------------------------------------
// ID tokens

export const VerifyBody = z.object({
  id_token: z.string().min(1).max(16_384),
  nonce: z.string().max(1024).optional(),
});
export type VerifyBody = z.infer<typeof VerifyBody>;

export const VerifiedIdToken = named(
  'VerifiedIdToken',
  "A verified Google ID token's claims, and the grant stored for its user (null when none).",
  z.object({
    claims: z.object({
      iss: z.string(),
      aud: z.string(),
      azp: z.string().nullable(),
      iat: z.number().int(),
      exp: z.number().int(),
      ...UserProfile.shape,
    }),
    grant: GrantSummary.nullable(),
  }),
);
export type VerifiedIdToken = z.infer<typeof VerifiedIdToken>;

// ---------------------------------------------------------------------------------------------
// Proxy

export const ProxyParams = z.object({
  sub: Sub,
  '*': z
    .string()
    .max(4096)
    .describe("The Google API path, or `{host}.googleapis.com/{path}` for another of Google's API hosts."),
});

// ---------------------------------------------------------------------------------------------
// Service API keys

export const IdParams = z.object({ id: z.string().max(100) });

export const ApiKeyList = named(
  'ApiKeyList',
  'The service API keys (never a key itself).',
  z.object({
    api_keys: z.array(
      z.object({
        id: z.string(),
        name: z.string(),
        created_at: timestamp,
        last_used_at: timestamp.nullable().describe('To the minute; null when never used since recorded.'),
      }),
    ),
  }),
);
export type ApiKeyList = z.infer<typeof ApiKeyList>;
export type ApiKeyInfo = ApiKeyList['api_keys'][number];

// ---------------------------------------------------------------------------------------------
// Webhooks

const WebhookEventType = z.enum(WEBHOOK_EVENT_TYPES);

export const WebhookAddBody = z.strictObject({
  url: z.string().max(4096),
  events: z.array(z.string().max(100)).max(20).optional(),
});
export type WebhookAddBody = z.infer<typeof WebhookAddBody>;

export const WebhookCreated = named(
  'WebhookCreated',
  'A new webhook endpoint; its signing secret is in this answer only.',
  z.object({
    id: z.string(),
    url: z.string(),
    events: z.array(WebhookEventType).nullable().describe('null: every event type.'),
    secret: z.string().describe('The Standard Webhooks signing secret (whsec_…). Shown once.'),
  }),
);
export type WebhookCreated = z.infer<typeof WebhookCreated>;

export const WebhookEndpoint = named(
  'WebhookEndpoint',
  'A webhook endpoint and its delivery counts (never its secret).',
  z.object({
    id: z.string(),
    url: z.string(),
    events: z.array(WebhookEventType).nullable(),
    status: z.enum(['enabled', 'disabled']),
    disabled_reason: z.string().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
    deliveries: z.object({
      pending: z.number().int(),
      delivered: z.number().int(),
      failed: z.number().int(),
    }),
  }),
);
export type WebhookEndpoint = z.infer<typeof WebhookEndpoint>;

export const WebhookList = z
  .object({ webhooks: z.array(WebhookEndpoint) })
  .describe('Every webhook endpoint.');
export type WebhookList = z.infer<typeof WebhookList>;

// ---------------------------------------------------------------------------------------------
// RISC receiver

export const SecurityEventAccepted = z
  .object({
    accepted: z.literal(true),
    jti: z.string(),
    duplicate: z.boolean().describe('This token was received before; nothing was done again.'),
    events: z.array(
      z.object({
        type: z.string(),
        sub: z.string().nullable(),
        action: z.enum(SECURITY_ACTIONS),
      }),
    ),
  })
  .describe('The token is verified and acted on (or was received before).');

// ---------------------------------------------------------------------------------------------
// Probes

export const Health = z.object({ status: z.literal('ok') }).describe('The process serves.');
const Checks = z
  .record(z.string(), z.string())
  .describe('Each check: "ok", or why it failed (no configuration in it).');
export const Ready = z.object({ status: z.literal('ready'), checks: Checks });
export const Unready = z.object({ status: z.literal('unready'), checks: Checks });

/** Nothing in the body (204). */
export const NoContent = z.undefined().describe('No content.');

// ---------------------------------------------------------------------------------------------
// Answers

type ErrorAnswer = ReturnType<typeof jsonAnswer<typeof ErrorBody>>;

/**
 * A route's error answers for its response schema: the statuses it names, each described, and
 * `default` for any other failure (500 INTERNAL, 503 STORE_UNAVAILABLE, 413/415 for a body…),
 * all with the one {@link ErrorBody}.
 */
export function errorAnswers<const Answers extends Record<number, string>>(
  answers: Answers,
): { [Status in keyof Answers]: ErrorAnswer } & { default: ErrorAnswer } {
  const answer = (description: string): ErrorAnswer => jsonAnswer(description, ErrorBody);
  return {
    ...Object.fromEntries(Object.entries(answers).map(([status, text]) => [status, answer(text)])),
    default: answer(
      'Any other failure: 500 INTERNAL, 503 STORE_UNAVAILABLE, 413 PAYLOAD_TOO_LARGE, 415 UNSUPPORTED_MEDIA_TYPE…',
    ),
  } as { [Status in keyof Answers]: ErrorAnswer } & { default: ErrorAnswer };
}

/** The service API's authentication refusal, on every /v1 route but sign-in and RISC. */
export const UNAUTHENTICATED = 'UNAUTHENTICATED: no service API key, or not a valid one.';

/** The service API's security requirement (see the document's securitySchemes). */
export const SERVICE_SECURITY = [{ serviceApiKey: [] }];
