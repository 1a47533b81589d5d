import { describe, expect, it } from 'vitest';
import { OffsetClock } from '../../src/clock.js';
import type { GoogleOAuthClient } from '../../src/google/oauth.js';
import { TokenService } from '../../src/tokens/index.js';
import type { Grant, Vault } from '../../src/vault/index.js';

/** A vault whose every user has a fresh stored access token, counting the reads. */
function storedTokens(clock: OffsetClock) {
  const reads: string[] = [];
  const vault = {
    // One process, nothing else writing: memory is always current.
    changes: { subscribe: () => () => undefined, isCurrent: () => true, publish: () => undefined, close: async () => undefined },
    getGrant: async (sub: string, clientId: string): Promise<Grant> => {
      reads.push(sub);
      const now = clock.now();
      return {
        sub,
        clientId,
        refreshToken: `1//refresh-${sub}`,
        accessToken: `ya29.stored-${sub}`,
        accessTokenExpiresAt: now + 3_600_000,
        scopes: ['openid'],
        status: 'active',
        version: 1,
        refreshTokenIssuedAt: now,
        createdAt: now,
        updatedAt: now,
      };
    },
  } as unknown as Vault;
  const oauth = { clientId: 'server.apps.googleusercontent.com' } as GoogleOAuthClient;
  return { reads, vault, oauth };
}

describe('TokenService memory', () => {
  it('keeps at most memoryCacheSize users and forgets the oldest first', async () => {
    const clock = new OffsetClock();
    const { reads, vault, oauth } = storedTokens(clock);
    const tokens = new TokenService({ vault, oauth, clock, memoryCacheSize: 100 });
    const subs = Array.from({ length: 150 }, (_, i) => `user-${i}`);
    for (const sub of subs) expect((await tokens.getAccessToken(sub)).token).toBe(`ya29.stored-${sub}`);
    expect(reads).toHaveLength(150);

    // The newest 100 come from memory; the oldest 50 were forgotten and are read again.
    for (const sub of subs.slice(50)) await tokens.getAccessToken(sub);
    expect(reads).toHaveLength(150);
    await tokens.getAccessToken('user-0');
    await tokens.getAccessToken('user-49');
    expect(reads.slice(150)).toEqual(['user-0', 'user-49']);
  });
});
