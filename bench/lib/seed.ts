import { randomBytes } from 'node:crypto';
import type { Vault } from '../../src/vault/index.js';

/** The sub of the i-th seeded user: 21 digits, like Google's. */
export function seededSub(index: number): string {
  return `2${String(index).padStart(20, '0')}`;
}

/**
 * Store `count` users' grants through the Vault (saveSignIn: one transaction per user, the
 * only write path the Store contract offers), with Google-sized tokens and an access token valid
 * for two hours, so reading it back never needs Google. Calls are issued `batch` at a time.
 */
export async function seedGrants(
  vault: Vault,
  clientId: string,
  options: { first?: number; count: number; batch?: number; onProgress?: (done: number) => void },
): Promise<void> {
  const first = options.first ?? 0;
  const batch = options.batch ?? 1000;
  const now = Date.now();
  // Google's refresh tokens are ~100 characters, access tokens ~200 (Google allows up to 512/2048: https://developers.google.com/identity/protocols/oauth2#size).
  const refreshTail = randomBytes(75).toString('base64url');
  const accessTail = randomBytes(150).toString('base64url');
  for (let start = first; start < first + options.count; start += batch) {
    const end = Math.min(first + options.count, start + batch);
    const writes: Array<Promise<unknown>> = [];
    for (let i = start; i < end; i++) {
      const sub = seededSub(i);
      writes.push(
        vault.saveSignIn({
          user: {
            sub,
            email: `user${i}@example.com`,
            emailVerified: true,
            name: `Bench User ${i}`,
            givenName: 'Bench',
            familyName: `User ${i}`,
            picture: null,
            locale: 'en',
            hd: null,
          },
          clientId,
          scopes: [
            'https://www.googleapis.com/auth/drive.appdata',
            'https://www.googleapis.com/auth/userinfo.email',
            'openid',
          ],
          refreshToken: `1//0${i.toString(36)}${refreshTail}`,
          accessToken: `ya29.${i.toString(36)}${accessTail}`,
          accessTokenExpiresAt: now + 2 * 3_600_000,
          now,
        }),
      );
    }
    await Promise.all(writes);
    options.onProgress?.(end - first);
  }
}
