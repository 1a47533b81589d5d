import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { rejectToken, verifyGoogleJwt, type GoogleKeySet } from '../idtoken/index.js';
import type { Vault } from '../vault/index.js';
import type { SecurityLog, SecurityStep } from './security-log.js';

const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
const OAUTH = 'https://schemas.openid.net/secevent/oauth/event-type/';

/** What behalf did about one event. */
export type SecurityAction =
  | 'grant_dropped'
  | 'user_disabled'
  | 'user_enabled'
  | 'user_marked'
  | 'user_deleted'
  | 'verified'
  | 'no_such_user'
  | 'ignored';

export interface ReceivedEvent {
  type: string;
  sub: string | null;
  action: SecurityAction;
}

export interface ReceiverOptions {
  keys: GoogleKeySet;
  clock: Clock;
  vault: Vault;
  log: SecurityLog;
  clientId: string;
  /** Every client id of the project (server and apps): a SET's `aud` must be one of them. */
  audiences: readonly string[];
  /** The issuer from Google's risc-configuration. */
  issuer: string;
  logger: Logger;
  /** Told the type of each event acted on (metrics); not of redeliveries. */
  onEvent?: (type: string) => void;
}

/**
 * Cross-Account Protection: verifies Google's security event tokens the same strict way as ID
 * tokens (signature with Google's keys, issuer, audience; no `exp` check, as Google says) and acts
 * on each event (https://developers.google.com/identity/protocols/risc).
 */
export class SecurityEventReceiver {
  constructor(private readonly options: ReceiverOptions) {}

  async receive(token: string): Promise<{ jti: string; duplicate: boolean; events: ReceivedEvent[] }> {
    const { payload } = await verifyGoogleJwt(token, this.options.keys, {
      what: 'security event token',
      typ: ['JWT', 'secevent+jwt'],
    });
    const issuers = [
      this.options.issuer,
      this.options.issuer.endsWith('/') ? this.options.issuer.slice(0, -1) : `${this.options.issuer}/`,
    ];
    if (typeof payload.iss !== 'string' || !issuers.includes(payload.iss))
      rejectToken('bad_issuer', 'The security event token was not issued by Google.');
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!audiences.some((a) => typeof a === 'string' && this.options.audiences.includes(a))) {
      rejectToken('bad_audience', 'The security event token is for another project.');
    }
    if (!Number.isSafeInteger(payload.iat))
      rejectToken('missing_claim', 'The security event token has no iat.');
    if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256) {
      rejectToken('missing_claim', 'The security event token has no jti.');
    }
    const events = payload.events;
    if (
      typeof events !== 'object' ||
      events === null ||
      Array.isArray(events) ||
      Object.keys(events).length === 0
    ) {
      rejectToken('missing_claim', 'The security event token carries no events.');
    }
    const jti = payload.jti as string;

    // Work out what to do (reads only), then record the id and do it in one transaction: a
    // failure records nothing and answers 5xx, so Google's redelivery acts.
    const now = this.options.clock.now();
    const handled: ReceivedEvent[] = [];
    const steps: SecurityStep[] = [];
    for (const [type, body] of Object.entries(events as Record<string, unknown>)) {
      const decided = await this.#decide(
        type,
        (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>,
      );
      handled.push(decided.event);
      steps.push(...decided.steps);
    }
    if (!(await this.options.log.applyEvent(jti, now, steps))) return { jti, duplicate: true, events: [] };
    for (const event of handled) {
      this.options.logger.info(
        { jti, event: event.type, sub: event.sub, action: event.action },
        'security event',
      );
      this.options.onEvent?.(event.type);
    }
    return { jti, duplicate: false, events: handled };
  }

  async #decide(
    type: string,
    body: Record<string, unknown>,
  ): Promise<{ event: ReceivedEvent; steps: SecurityStep[] }> {
    const { vault, clientId } = this.options;
    const subject = (body.subject ?? {}) as Record<string, unknown>;
    const short = type.startsWith(RISC)
      ? type.slice(RISC.length)
      : type.startsWith(OAUTH)
        ? type.slice(OAUTH.length)
        : type;
    // An event about one of our users is announced to the webhooks (security_event.received), in
    // the transaction that acts on it; events about nobody we know, or about no one, are not.
    const outcome = (sub: string | null, action: SecurityAction, steps: SecurityStep[] = []) => ({
      event: { type: short, sub, action },
      steps:
        sub === null || action === 'no_such_user'
          ? steps
          : [...steps, { op: 'announce' as const, sub, event: short, action }],
    });
    if (short === 'verification') return outcome(null, 'verified');

    if (short === 'token-revoked') {
      const sub = await this.#subForRevokedToken(subject);
      if (sub === null) return outcome(null, 'no_such_user');
      return outcome(sub, 'grant_dropped', [{ op: 'revoke_grant', sub, clientId, state: 'token_revoked' }]);
    }

    const sub = typeof subject.sub === 'string' ? subject.sub : null;
    if (sub === null || (await vault.getUser(sub)) === null) return outcome(sub, 'no_such_user');
    switch (short) {
      // "Delete stored OAuth tokens" (https://developers.google.com/identity/protocols/risc#handle_events):
      // the grant is marked revoked and both tokens are erased; it comes back only with a new
      // sign-in with consent.
      case 'sessions-revoked':
      case 'tokens-revoked':
      case 'sessions-revoked-legacy':
        return outcome(sub, 'grant_dropped', [
          {
            op: 'revoke_grant',
            sub,
            clientId,
            state: short === 'tokens-revoked' ? 'tokens_revoked' : 'sessions_revoked',
          },
        ]);
      case 'account-disabled':
        // Stop all work for the user: the grant is dropped (jobs and token requests fail with
        // NEEDS_CONSENT) and the user is marked disabled until Google says otherwise.
        return outcome(sub, 'user_disabled', [
          {
            op: 'revoke_grant',
            sub,
            clientId,
            state: body.reason === 'hijacking' ? 'account_disabled_hijacking' : 'account_disabled',
          },
        ]);
      case 'account-enabled':
        return outcome(sub, 'user_enabled', [{ op: 'set_state', sub, state: null }]);
      case 'account-credential-change-required':
        return outcome(sub, 'user_marked', [{ op: 'set_state', sub, state: 'credential_change_required' }]);
      case 'account-purged':
        return outcome(sub, 'user_deleted', [{ op: 'delete_user', sub }]);
      default:
        return outcome(sub, 'ignored');
    }
  }

  /** token-revoked names a refresh token by its first 16 characters or its double SHA-512 (https://developers.google.com/identity/protocols/risc#token_revoked). */
  async #subForRevokedToken(subject: Record<string, unknown>): Promise<string | null> {
    const alg = subject.token_identifier_alg;
    const value = subject.token;
    if (typeof value !== 'string' || (alg !== 'prefix' && alg !== 'hash_base64_sha512_sha512')) return null;
    const matches = (refreshToken: string) =>
      alg === 'prefix'
        ? value.length >= 16 && refreshToken.startsWith(value)
        : doubleSha512(refreshToken) === value;
    for await (const row of this.options.vault.eachGrant()) {
      if (row.clientId !== this.options.clientId || row.refreshTokenCiphertext === null) continue;
      const grant = await this.options.vault.getGrant(row.sub, row.clientId);
      if (grant?.refreshToken != null && matches(grant.refreshToken)) return row.sub;
    }
    return null;
  }
}

function doubleSha512(token: string): string {
  return createHash('sha512').update(createHash('sha512').update(token, 'utf8').digest()).digest('base64');
}
