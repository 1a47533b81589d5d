import type { Clock } from '../clock.js';
import type { Store } from '../vault/index.js';

/** A week: a Testing-mode OAuth client's refresh tokens live 7 days. */
const WEEK_MS = 7 * 86_400_000;

/**
 * At start-up in production: grants whose refresh token Google said expires within 7 days mean
 * the OAuth client is still in Testing publishing status (its refresh tokens live 7 days,
 * https://support.google.com/cloud/answer/15549945) or users chose time-based access. Either
 * way every such user must sign in again soon: say so once, with how many. Answers the count.
 */
export async function warnAboutExpiringGrants(deps: {
  store: Pick<Store, 'countExpiringGrants'>;
  clientId: string;
  clock: Clock;
  logger: { warn(fields: Record<string, unknown>, message: string): void };
}): Promise<number> {
  const count = await deps.store.countExpiringGrants(deps.clientId, deps.clock.now() + WEEK_MS);
  if (count > 0) {
    deps.logger.warn(
      { grants: count, within_days: 7 },
      `${count} grant(s) have a refresh token Google said expires within 7 days: is the OAuth client's consent screen still in "Testing" publishing status (refresh tokens then last 7 days)? Publish the app to production in the Google Cloud console; until then those users must sign in again when it expires.`,
    );
  }
  return count;
}
