import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';

/** Issue 13: each grant's last refresh at Google and how it ended, for the admin console. */
describe('refresh records', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const last = (sub: string) => h.runtime.store.getLastRefresh(sub, h.runtime.behalf.clientId);

  it('records a refresh Google accepted, one it refused for the client, and one that found the grant dead', async () => {
    const sub = await h.signedInUser();
    expect(await last(sub)).toBeNull();

    const before = h.clock.now();
    await h.runtime.tokens.getAccessToken(sub, { forceRefresh: true });
    expect(await last(sub)).toEqual({ at: expect.any(Number), outcome: 'ok', reason: null });
    expect((await last(sub))!.at).toBeGreaterThanOrEqual(before);

    await h.control('POST', '/emulator/faults', {
      path: '/token',
      status: 400,
      error: 'invalid_client',
      count: 1,
    });
    h.clock.advance(1);
    await expect(h.runtime.tokens.getAccessToken(sub, { forceRefresh: true })).rejects.toMatchObject({
      code: 'CLIENT_MISCONFIGURED',
    });
    expect(await last(sub)).toMatchObject({ outcome: 'CLIENT_MISCONFIGURED' });

    await h.control('POST', '/emulator/grants/revoke', { sub });
    h.clock.advance(1);
    await expect(h.runtime.tokens.getAccessToken(sub, { forceRefresh: true })).rejects.toMatchObject({
      code: 'NEEDS_CONSENT',
    });
    const dead = await last(sub);
    expect(dead).toMatchObject({ outcome: 'NEEDS_CONSENT' });
    expect(dead!.reason).toMatch(/invalid_grant/);
    // A grant that is not active is refused without a call to Google: nothing new is recorded.
    h.clock.advance(1);
    await expect(h.runtime.tokens.getAccessToken(sub, { forceRefresh: true })).rejects.toMatchObject({
      code: 'NEEDS_CONSENT',
    });
    expect(await last(sub)).toEqual(dead);
  });
});
