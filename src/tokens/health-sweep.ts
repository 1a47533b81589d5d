import PQueue from 'p-queue';
import type { Clock } from '../clock.js';
import { isBehalfError } from '../errors.js';
import type { Vault } from '../vault/index.js';
import type { TokenService } from './token-service.js';

export interface SweepReport {
  checked: number;
  /** Grants whose access token was refreshed at Google during the sweep. */
  refreshed: number;
  healthy: number;
  /** Users who must sign in again (revoked, expired, never offline). */
  needsConsent: string[];
  /** Users whose check could not finish (Google unavailable): check again later. */
  unavailable: string[];
  /**
   * Users whose grant works but whose refresh token Google gave an expiry (a Testing-mode OAuth
   * client's 7 days, or time-based access), soonest first: they must sign in again by then.
   */
  expiring: Array<{ sub: string; refreshTokenExpiresAt: number }>;
  startedAt: number;
  finishedAt: number;
}

export interface SweepOptions {
  vault: Vault;
  tokens: TokenService;
  clock: Clock;
  clientId: string;
  /** Refresh every grant, not only those due: finds revoked grants whose access token still looks valid. */
  force?: boolean;
  /** Grants checked at once (default 4): the sweep must not eat the project's quota. */
  concurrency?: number;
  /** Called after each grant is checked, with the counts so far (the admin console shows them). */
  onProgress?: (report: Readonly<SweepReport>) => void;
  /** Stops the walk: checks already started finish, and the report covers what was checked. */
  signal?: AbortSignal;
}

/**
 * The token health sweep: walks every grant, refreshes where due, and reports which users need to
 * sign in again, so a revoked or expired grant is found before a job needs it.
 */
export async function sweepGrants(options: SweepOptions): Promise<SweepReport> {
  const { vault, tokens, clock, clientId } = options;
  const startedAt = clock.now();
  const queue = new PQueue({ concurrency: options.concurrency ?? 4 });
  const report: SweepReport = {
    checked: 0,
    refreshed: 0,
    healthy: 0,
    needsConsent: [],
    unavailable: [],
    expiring: [],
    startedAt,
    finishedAt: startedAt,
  };

  const progress = () => options.onProgress?.(report);
  const stopped = () => options.signal?.aborted === true;
  for await (const grant of vault.eachGrant()) {
    // A page's worth queued at most: the walk waits for the checks rather than reading ahead. Waited
    // for before this grant is counted: a stop seen after the wait leaves it unchecked.
    if (queue.size >= 500) await queue.onSizeLessThan(250);
    if (stopped()) break;
    if (grant.clientId !== clientId) continue;
    report.checked++;
    if (grant.status !== 'active') {
      report.needsConsent.push(grant.sub);
      progress();
      continue;
    }
    const expiresAt = grant.refreshTokenExpiresAt;
    if (expiresAt !== null && clock.now() >= expiresAt && grant.refreshTokenCiphertext !== null) {
      // Past the expiry Google gave: dead at Google, so marked without asking it
      // (https://developers.google.com/identity/protocols/oauth2#expiration).
      await vault.setGrantStatus(grant.sub, clientId, 'needs_consent', clock.now(), 'grant_expired');
      report.needsConsent.push(grant.sub);
      progress();
      continue;
    }
    void queue.add(async () => {
      try {
        const before = grant.accessTokenExpiresAt;
        const token = await tokens.getAccessToken(
          grant.sub,
          options.force === true ? { forceRefresh: true } : {},
        );
        if (token.expiresAt !== before) report.refreshed++;
        report.healthy++;
        if (expiresAt !== null) report.expiring.push({ sub: grant.sub, refreshTokenExpiresAt: expiresAt });
      } catch (error) {
        if (isBehalfError(error) && (error.code === 'NEEDS_CONSENT' || error.code === 'USER_NOT_FOUND')) {
          report.needsConsent.push(grant.sub);
        } else {
          report.unavailable.push(grant.sub);
        }
      }
      progress();
    });
  }
  if (stopped()) {
    // Stopped: what is queued but not started is not checked.
    report.checked -= queue.size;
    queue.clear();
  }
  await queue.onIdle();
  report.needsConsent.sort();
  report.unavailable.sort();
  report.expiring.sort(
    (a, b) => a.refreshTokenExpiresAt - b.refreshTokenExpiresAt || (a.sub < b.sub ? -1 : 1),
  );
  report.finishedAt = clock.now();
  return report;
}
