import { OAuth2Client, type AuthClient } from 'google-auth-library';
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
    if (options.url !== undefined) this.allowList.check(options.url);
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
