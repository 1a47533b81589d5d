import { randomBytes } from 'node:crypto';
import type { SignInSave, Vault } from '../../src/vault/index.js';

/** The sub of the i-th seeded user: 21 digits, like Google's. */
export function seededSub(index: number): string {
  return `2${String(index).padStart(20, '0')}`;
}

/**
 * What every seeded user of one database shares: the token tails and the moment of the sign-in.
 * Both seeding paths (saveSignIn and bench/lib/bulk-fill.ts) take it, so they write the same rows.
 */
export interface SeedTokens {
  refreshTail: string;
  accessTail: string;
  /** Unix ms: every row's created/updated/signed-in time; access tokens expire two hours later. */
  now: number;
}

export function newSeedTokens(now = Date.now()): SeedTokens {
  // Google's refresh tokens are ~100 characters, access tokens ~200 (Google allows up to 512/2048: https://developers.google.com/identity/protocols/oauth2#size).
  return {
    refreshTail: randomBytes(75).toString('base64url'),
    accessTail: randomBytes(150).toString('base64url'),
    now,
  };
}

const SEEDED_SCOPES = [
  'https://www.googleapis.com/auth/drive.appdata',
  'https://www.googleapis.com/auth/userinfo.email',
  'openid',
];

/** The i-th seeded user's access token, as getAccessToken must hand it back. */
export function seededAccessToken(index: number, tokens: SeedTokens): string {
  return `ya29.${index.toString(36)}${tokens.accessTail}`;
}

/** The i-th seeded user's sign-in, as Vault.saveSignIn takes it. */
export function seededSignIn(index: number, clientId: string, tokens: SeedTokens): SignInSave {
  return {
    user: {
      sub: seededSub(index),
      email: `user${index}@example.com`,
      emailVerified: true,
      name: `Bench User ${index}`,
      givenName: 'Bench',
      familyName: `User ${index}`,
      picture: null,
      locale: 'en',
      hd: null,
    },
    clientId,
    scopes: SEEDED_SCOPES,
    refreshToken: `1//0${index.toString(36)}${tokens.refreshTail}`,
    accessToken: seededAccessToken(index, tokens),
    accessTokenExpiresAt: tokens.now + 2 * 3_600_000,
    now: tokens.now,
  };
}

/**
 * Store `count` users' grants through the Vault (saveSignIn: one transaction per user, the
 * only write path the Store contract offers), with Google-sized tokens and an access token valid
 * for two hours, so reading it back never needs Google. Calls are issued `batch` at a time.
 */
export async function seedGrants(
  vault: Vault,
  clientId: string,
  options: {
    first?: number;
    count: number;
    batch?: number;
    tokens?: SeedTokens;
    onProgress?: (done: number) => void;
  },
): Promise<void> {
  const first = options.first ?? 0;
  const batch = options.batch ?? 1000;
  const tokens = options.tokens ?? newSeedTokens();
  for (let start = first; start < first + options.count; start += batch) {
    const end = Math.min(first + options.count, start + batch);
    const writes: Array<Promise<unknown>> = [];
    for (let i = start; i < end; i++) writes.push(vault.saveSignIn(seededSignIn(i, clientId, tokens)));
    await Promise.all(writes);
    options.onProgress?.(end - first);
  }
}
