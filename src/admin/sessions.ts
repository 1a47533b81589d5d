import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { parse as parseCookies, serialize as serializeCookie } from 'cookie';
import type { Clock } from '../clock.js';
import type { AdminSessionStore } from './session-store.js';

/** A console session ends after this long without a request (sliding)… */
export const DEFAULT_IDLE_TIMEOUT_MS = 15 * 60_000;
/** …and this long after sign-in, however busy (OWASP's session management cheat sheet suggests both). */
export const DEFAULT_LIFETIME_MS = 8 * 60 * 60_000;

/** The cookie holds 32 random bytes, base64url: nothing else is ever accepted as a session token. */
const TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;
const CSRF_LABEL = 'behalf admin console csrf v1';

export interface AdminSession {
  /** The cookie's value; the database holds only its SHA-256. */
  token: string;
  apiKeyId: string;
  apiKeyName: string;
  createdAt: number;
  /** The synchroniser token every form of this session carries. */
  csrfToken: string;
}

/** Why there is no session: no cookie, a cookie no session has (signed out, key revoked), or timed out. */
export type NoSession = 'missing' | 'invalid' | 'expired';

export interface AdminSessionsOptions {
  store: AdminSessionStore;
  clock: Clock;
  /** Checks a presented service API key; its id and label when valid. */
  authenticate: (apiKey: string) => Promise<{ id: string; name: string } | null>;
  idleTimeoutMs?: number;
  lifetimeMs?: number;
}

/**
 * Console sign-in: a service API key is exchanged for a random session token (the key itself is
 * never stored in the browser), kept in the database so that every instance sharing it knows the
 * session, a sign-out ends it everywhere, and revoking the key ends every session opened with it.
 */
export class AdminSessions {
  readonly idleTimeoutMs: number;
  readonly lifetimeMs: number;

  constructor(private readonly options: AdminSessionsOptions) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.lifetimeMs = options.lifetimeMs ?? DEFAULT_LIFETIME_MS;
  }

  /** A new session for a valid key; null for a wrong one. */
  async open(presentedKey: string): Promise<{ token: string } | null> {
    const key = await this.options.authenticate(presentedKey);
    if (key === null) return null;
    const now = this.options.clock.now();
    // Sessions that ran out are forgotten here, so the table holds live sessions only.
    await this.options.store.prune(now - this.idleTimeoutMs, now - this.lifetimeMs);
    const token = randomBytes(32).toString('base64url');
    return (await this.options.store.create(hashToken(token), key.id, now)) ? { token } : null;
  }

  /** The session a cookie names, its idle timeout slid forward; or why there is none. */
  async resume(token: string | undefined): Promise<AdminSession | NoSession> {
    if (token === undefined) return 'missing';
    if (!TOKEN_FORMAT.test(token)) return 'invalid';
    const idHash = hashToken(token);
    const record = await this.options.store.get(idHash);
    if (record === null) return 'invalid';
    const now = this.options.clock.now();
    if (now - record.lastSeenAt >= this.idleTimeoutMs || now - record.createdAt >= this.lifetimeMs) {
      await this.options.store.delete(idHash);
      return 'expired';
    }
    await this.options.store.touch(idHash, now);
    return {
      token,
      apiKeyId: record.apiKeyId,
      apiKeyName: record.apiKeyName,
      createdAt: record.createdAt,
      csrfToken: csrfTokenFor(token),
    };
  }

  /** Sign-out: the session is gone for every instance. */
  async close(token: string): Promise<void> {
    if (TOKEN_FORMAT.test(token)) await this.options.store.delete(hashToken(token));
  }
}

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * The session's CSRF token: an HMAC of a fixed label under the session token. Only a holder of the
 * HttpOnly cookie can compute it, it needs no storage, and it dies with the session.
 */
export function csrfTokenFor(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update(CSRF_LABEL).digest('base64url');
}

/** Whether a form's CSRF field is this session's token (compared in constant time). */
export function csrfMatches(session: AdminSession, presented: unknown): boolean {
  if (typeof presented !== 'string' || presented.length !== session.csrfToken.length) return false;
  return timingSafeEqual(Buffer.from(presented), Buffer.from(session.csrfToken));
}

/**
 * The cookie's name: with Secure, the `__Secure-` prefix makes browsers refuse the cookie from a
 * plain-HTTP page or without the Secure flag (RFC 6265bis §4.1.3.1).
 */
function cookieName(secure: boolean): string {
  return secure ? '__Secure-behalf_admin' : 'behalf_admin';
}

/**
 * `Set-Cookie` for a session: HttpOnly (no script reads it), SameSite=Strict (no other site's page
 * sends it), Path=/admin (no other route receives it), Secure over TLS. No Max-Age: the browser
 * forgets it when it closes, and the server enforces the timeouts in any case.
 */
export function sessionCookie(token: string, secure: boolean): string {
  return serializeCookie(cookieName(secure), token, {
    httpOnly: true,
    sameSite: 'strict',
    path: '/admin',
    secure,
  });
}

/** `Set-Cookie` that removes the session cookie. */
export function clearedSessionCookie(secure: boolean): string {
  return serializeCookie(cookieName(secure), '', {
    httpOnly: true,
    sameSite: 'strict',
    path: '/admin',
    secure,
    maxAge: 0,
  });
}

/** The session token from a `Cookie` header, if one is there. */
export function readSessionCookie(header: string | undefined, secure: boolean): string | undefined {
  if (header === undefined || header.length > 8192) return undefined;
  return parseCookies(header)[cookieName(secure)];
}
