import { OAuth2Client, type AuthClient } from 'google-auth-library';
import { BehalfError } from '../errors.js';
import type { TokenService } from '../tokens/index.js';
import type { GoogleHostAllowList } from './allow-list.js';

// gaxios' types as google-auth-library sees them (it is not a direct dependency of ours).
type GaxiosOptions = Parameters<AuthClient['request']>[0];
type GaxiosPromise<T> =
  ReturnType<AuthClient['request']> extends Promise<infer R> ? Promise<R & { data: T }> : never;

/**
 * An auth client the `googleapis` package accepts (`google.drive({version: 'v3', auth})`), backed
 * by behalf's token service: the user's token is added to each request (refreshed when due, one
 * refresh per user however many callers), and a 401 gets a new token and one retry, as
 * google-auth-library's OAuth2Client does. Requests to hosts that are not Google APIs are refused.
 * It is an OAuth2Client so that googleapis' types accept it; it never holds the refresh token.
 *
 * OAuth2Client's own calls to Google's OAuth endpoints (token exchange and refresh, revocation,
 * tokeninfo, Google's certificates) would go to real Google with this client's empty id, whatever
 * behalf is configured with: each is refused with a BehalfError that names behalf's method for it.
 */
export class BehalfAuthClient extends OAuth2Client {
  constructor(
    readonly sub: string,
    private readonly tokens: TokenService,
    private readonly allowList: GoogleHostAllowList,
  ) {
    super();
  }

  override async getAccessToken(): Promise<{ token: string; res: null }> {
    const token = await this.tokens.getAccessToken(this.sub);
    return { token: token.token, res: null };
  }

  override async getRequestHeaders(url?: string | URL): Promise<Headers> {
    if (url !== undefined) this.allowList.check(url);
    const { token } = await this.getAccessToken();
    return new Headers({ authorization: `Bearer ${token}` });
  }

  override async request<T>(options: GaxiosOptions): GaxiosPromise<T> {
    this.allowList.check(target(options));
    let token = await this.tokens.getAccessToken(this.sub);
    try {
      return await this.transporter.request<T>(withToken(options, token.token));
    } catch (error) {
      const status = (error as { response?: { status?: number } }).response?.status;
      if (status !== 401 || !replayable(options)) throw error;
      token = await this.tokens.getAccessToken(this.sub, { rejected: token.token });
      return this.transporter.request<T>(withToken(options, token.token));
    }
  }

  // OAuth2Client's internal paths to a token and to a request, in case a caller reaches them:
  // behalf's token service and the request above, never OAuth2Client's refresh.
  protected override async getRequestMetadataAsync(url?: string | URL | null): Promise<{ headers: Headers }> {
    return { headers: await this.getRequestHeaders(url ?? undefined) };
  }

  protected override requestAsync<T>(options: GaxiosOptions): GaxiosPromise<T> {
    return this.request<T>(options);
  }

  // Each of these would call Google's OAuth endpoints (or send a user there) directly.
  override generateAuthUrl(..._args: unknown[]): never {
    throw refusal(
      'generateAuthUrl',
      'users sign in through your app, which sends behalf the server auth code',
    );
  }
  override getRevokeTokenURL(..._args: unknown[]): never {
    throw refusal('getRevokeTokenURL', 'behalf.signOut(sub) revokes the grant at the configured Google');
  }
  override getToken(...args: unknown[]): never {
    return refuse(args, 'getToken', 'behalf.signIn({ code }) redeems a server auth code');
  }
  protected override refreshToken(..._args: unknown[]): never {
    return refuse(_args, 'refreshToken', 'behalf.getAccessToken(sub) refreshes when due');
  }
  protected override refreshTokenNoCache(..._args: unknown[]): never {
    return refuse(_args, 'refreshTokenNoCache', 'behalf.getAccessToken(sub) refreshes when due');
  }
  override refreshAccessToken(...args: unknown[]): never {
    return refuse(args, 'refreshAccessToken', 'behalf.getAccessToken(sub) refreshes when due');
  }
  override revokeToken(...args: unknown[]): never {
    return refuse(args, 'revokeToken', 'behalf.signOut(sub) revokes the grant at the configured Google');
  }
  override revokeCredentials(...args: unknown[]): never {
    return refuse(
      args,
      'revokeCredentials',
      'behalf.signOut(sub) revokes the grant at the configured Google',
    );
  }
  override verifyIdToken(...args: unknown[]): never {
    return refuse(
      args,
      'verifyIdToken',
      "behalf.verifyIdToken(idToken) checks it against the configured Google's keys",
    );
  }
  override getTokenInfo(..._args: unknown[]): never {
    return refuse(_args, 'getTokenInfo', 'behalf.getAccessToken(sub) says which scopes the token has');
  }
  override getFederatedSignonCerts(...args: unknown[]): never {
    return refuse(
      args,
      'getFederatedSignonCerts',
      "behalf.verifyIdToken(idToken) uses the configured Google's keys",
    );
  }
  override getFederatedSignonCertsAsync(..._args: unknown[]): never {
    return refuse(
      // Stryker disable next-line ArrayDeclaration: refuse() reads only a function as the last argument; a string there is ignored as the empty list is.
      [],
      'getFederatedSignonCertsAsync',
      "behalf.verifyIdToken(idToken) uses the configured Google's keys",
    );
  }
  override getIapPublicKeys(...args: unknown[]): never {
    return refuse(args, 'getIapPublicKeys', 'behalf does not verify IAP tokens');
  }
  override getIapPublicKeysAsync(..._args: unknown[]): never {
    return refuse(_args, 'getIapPublicKeysAsync', 'behalf does not verify IAP tokens');
  }
}

/** The refused-method error: what was refused, why, and what to call instead. */
function refusal(method: string, instead: string): BehalfError {
  return new BehalfError(
    'INVALID_REQUEST',
    `authFor(sub).${method}() is refused: it would call Google's OAuth endpoints directly, bypassing behalf's configured Google. Instead, ${instead}.`,
    { reason: 'auth_client_method_refused' },
  );
}

/**
 * Refuse the way the method reports: to its callback when given one (google-auth-library's
 * callback overloads), else as a rejected promise. Typed `never` so that it overrides every
 * overload; the caller gets a promise or undefined, as from the original.
 */
function refuse(args: readonly unknown[], method: string, instead: string): never {
  const error = refusal(method, instead);
  const callback = args.at(-1);
  if (typeof callback === 'function') {
    queueMicrotask(() => (callback as (error: Error) => void)(error));
    return undefined as never;
  }
  return Promise.reject(error) as never;
}

/** Where a request goes: its url, against its baseURL when it has one. */
function target(options: GaxiosOptions): string | URL {
  const { url, baseURL } = options as { url?: string | URL; baseURL?: string | URL };
  // Stryker disable next-line StringLiteral: any relative path against baseURL keeps its origin and credentials, all that check() looks at.
  if (baseURL !== undefined) return new URL(url ?? '', baseURL);
  if (url === undefined) throw new BehalfError('HOST_NOT_ALLOWED', 'A request without a URL is refused.');
  return url;
}

function withToken(options: GaxiosOptions, token: string): GaxiosOptions {
  const headers = new Headers(options.headers as ConstructorParameters<typeof Headers>[0]);
  headers.set('authorization', `Bearer ${token}`);
  return { ...options, headers };
}

/** A streamed upload body cannot be sent twice. */
function replayable(options: GaxiosOptions): boolean {
  const body: unknown = options.data ?? options.body;
  const streamed = (value: unknown) => typeof (value as { pipe?: unknown } | null)?.pipe === 'function';
  if (streamed(body)) return false;
  return !(options.multipart ?? []).some((part) => streamed(part.content));
}
