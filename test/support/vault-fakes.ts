import type { AccessGrant, Grant } from '../../src/vault/index.js';

/**
 * Gives a fake vault the `getAccessGrant` a TokenService reads with, answered through the fake's
 * own `getGrant` (so a test counting reads counts it too): the grant without its refresh token, as
 * Vault.getAccessGrant answers.
 */
export function withAccessGrant<
  V extends { getGrant: (sub: string, clientId: string) => Promise<Grant | null> },
>(vault: V): V & { getAccessGrant: (sub: string, clientId: string) => Promise<AccessGrant | null> } {
  return Object.assign(vault, {
    getAccessGrant: async (sub: string, clientId: string): Promise<AccessGrant | null> => {
      const grant = await vault.getGrant(sub, clientId);
      if (grant === null) return null;
      const { refreshToken, ...rest } = grant;
      return { ...rest, hasRefreshToken: refreshToken !== null };
    },
  });
}
