/**
 * A typed client for behalf's HTTP service API, for a Node backend that runs behalf as a server
 * (`behalf serve`). Its types are the server's own answer schemas (src/http/schemas.ts), so a
 * change to an answer is a compile error here. Import it as `behalf/client`.
 *
 * ```ts
 * import { BehalfClient } from 'behalf/client';
 * const behalf = new BehalfClient({ baseUrl: 'https://behalf.internal', apiKey: process.env.BEHALF_API_KEY! });
 * const { access_token } = await behalf.getAccessToken(sub);
 * for await (const user of behalf.listAllUsers({ status: 'needs_consent' })) console.log(user.user.email);
 * ```
 */
import type { ErrorCode } from '../errors.js';
import type {
  AccessToken,
  ApiKeyInfo,
  ApiKeyList,
  DeleteUserResult,
  ErrorBody,
  SignOutResult,
  User,
  UserList,
  UserListQuery,
  VerifiedIdToken,
  WebhookAddBody,
  WebhookCreated,
  WebhookEndpoint,
  WebhookList,
} from '../http/schemas.js';

export type {
  AccessToken,
  ApiKeyInfo,
  DeleteUserResult,
  ErrorBody,
  ErrorCode,
  SignOutResult,
  User,
  UserList,
  UserListQuery,
  VerifiedIdToken,
  WebhookAddBody,
  WebhookCreated,
  WebhookEndpoint,
};

/** The `fetch` the client calls (the global one by default). */
export type ClientFetch = (input: string, init: RequestInit) => Promise<Response>;

export interface BehalfClientOptions {
  /** behalf's base URL, e.g. `https://behalf.internal:8080`. */
  baseUrl: string;
  /** A service API key (`behalf keys create-api-key`). Sent as a Bearer token, never shown in an error. */
  apiKey: string;
  /** Replaces the global `fetch` (tests, proxies, timeouts). */
  fetch?: ClientFetch;
}

/**
 * An answer behalf refused or failed with: `code` is its stable error code (the README lists
 * them), `status` the HTTP status, `body` the whole error body. The message is behalf's, which
 * never holds a token, code, secret or key; the client adds none.
 */
export class BehalfClientError extends Error {
  override readonly name = 'BehalfClientError';
  readonly code: ErrorCode | 'UNEXPECTED_RESPONSE';
  readonly status: number;
  readonly reason: string | undefined;
  readonly retryable: boolean;
  readonly body: ErrorBody | undefined;

  constructor(status: number, body: ErrorBody | undefined, message?: string) {
    super(message ?? body?.message ?? `behalf answered ${status}.`);
    this.status = status;
    this.body = body;
    this.code = body?.error ?? 'UNEXPECTED_RESPONSE';
    this.reason = body?.reason;
    this.retryable = body?.retryable === true;
  }
}

/** The service API of one behalf server. Methods map one to one to its routes (see /openapi.json). */
export class BehalfClient {
  readonly #baseUrl: string;
  readonly #apiKey: string;
  readonly #fetch: ClientFetch;

  constructor(options: BehalfClientOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#apiKey = options.apiKey;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** `GET /v1/users/{sub}`: profile, grant, security state. USER_NOT_FOUND when none. */
  getUser(sub: string): Promise<User> {
    return this.#call('GET', `/v1/users/${encodeURIComponent(sub)}`);
  }

  /** `GET /v1/users`: one page of users; pass `next_cursor` back as `cursor` for the next. */
  listUsers(query: UserListQuery = {}): Promise<UserList> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) params.set(name, String(value));
    }
    const search = params.toString();
    return this.#call('GET', `/v1/users${search === '' ? '' : `?${search}`}`);
  }

  /** Every user matching the filters, page after page (`limit` is the page size). */
  async *listAllUsers(query: Omit<UserListQuery, 'cursor'> = {}): AsyncGenerator<User, void, undefined> {
    let cursor: string | null | undefined;
    do {
      const page = await this.listUsers({ ...query, ...(cursor == null ? {} : { cursor }) });
      yield* page.users;
      cursor = page.next_cursor;
    } while (cursor !== null);
  }

  /** `POST /v1/users/{sub}/access-token`: a fresh Google access token. NEEDS_CONSENT when none can be had. */
  getAccessToken(sub: string): Promise<AccessToken> {
    return this.#call('POST', `/v1/users/${encodeURIComponent(sub)}/access-token`);
  }

  /** `POST /v1/users/{sub}/sign-out`: revoke the grant (at Google too); the profile stays. */
  signOut(sub: string): Promise<SignOutResult> {
    return this.#call('POST', `/v1/users/${encodeURIComponent(sub)}/sign-out`);
  }

  /** `DELETE /v1/users/{sub}`: revoke at Google and erase everything stored. */
  deleteUser(sub: string): Promise<DeleteUserResult> {
    return this.#call('DELETE', `/v1/users/${encodeURIComponent(sub)}`);
  }

  /** `POST /v1/id-tokens/verify`: a Google ID token's verified claims. ID_TOKEN_INVALID (with a reason) otherwise. */
  verifyIdToken(idToken: string, options: { nonce?: string } = {}): Promise<VerifiedIdToken> {
    return this.#call('POST', '/v1/id-tokens/verify', {
      id_token: idToken,
      ...(options.nonce === undefined ? {} : { nonce: options.nonce }),
    });
  }

  /** `GET /v1/api-keys`: the service API keys (never a key itself). */
  async listApiKeys(): Promise<ApiKeyInfo[]> {
    return (await this.#call<ApiKeyList>('GET', '/v1/api-keys')).api_keys;
  }

  /** `DELETE /v1/api-keys/{id}`: revoke a service API key. */
  async revokeApiKey(id: string): Promise<void> {
    await this.#call('DELETE', `/v1/api-keys/${encodeURIComponent(id)}`);
  }

  /** Webhook endpoints: add (the secret is in that answer only), list, remove. */
  readonly webhooks = {
    /** `POST /v1/webhooks`. */
    add: (input: WebhookAddBody): Promise<WebhookCreated> => this.#call('POST', '/v1/webhooks', input),
    /** `GET /v1/webhooks`. */
    list: async (): Promise<WebhookEndpoint[]> =>
      (await this.#call<WebhookList>('GET', '/v1/webhooks')).webhooks,
    /** `DELETE /v1/webhooks/{id}`. */
    remove: async (id: string): Promise<void> => {
      await this.#call('DELETE', `/v1/webhooks/${encodeURIComponent(id)}`);
    },
  };

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.#fetch(`${this.#baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.#apiKey}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      throw new BehalfClientError(response.status, isErrorBody(parsed) ? parsed : undefined);
    }
    if (parsed === undefined) {
      throw new BehalfClientError(
        response.status,
        undefined,
        `behalf answered ${response.status} without JSON.`,
      );
    }
    return parsed as T;
  }
}

function isErrorBody(value: unknown): value is ErrorBody {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { error?: unknown }).error === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}
