import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * Issue 12, point 7: with BEHALF_HOSTED_DOMAIN set, a genuine sign-in of a user outside that
 * Google Workspace domain (another `hd`, or a consumer account without one) is HD_NOT_ALLOWED
 * (403), and nothing about them is stored.
 */
describe('sign-in restricted to a Workspace domain', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { BEHALF_HOSTED_DOMAIN: 'Example.com' } });
  });
  afterAll(async () => {
    await h.close();
  });

  async function userOf(hd: string | undefined): Promise<{ sub: string; code: string }> {
    const { sub } = await h.control<{ sub: string }>('POST', '/emulator/users', {
      email: `user-${Math.random().toString(36).slice(2)}@${hd ?? 'gmail.com'}`,
      ...(hd === undefined ? {} : { hd }),
    });
    return { sub, code: await h.mintCode(sub) };
  }

  it('signs in a user of the domain (hd compared without regard to case)', async () => {
    const { sub, code } = await userOf('example.com');
    const response = await h.signIn(code);
    expect(response.status).toBe(201);
    expect((await h.service('GET', `/v1/users/${sub}`)).status).toBe(200);
  });

  it.each([
    ['another domain', 'other.example'],
    ['a consumer account (no hd)', undefined],
  ])('refuses %s with 403 HD_NOT_ALLOWED and stores nothing', async (_what, hd) => {
    const { sub, code } = await userOf(hd);
    const response = await h.signIn(code);
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: 'HD_NOT_ALLOWED', reason: 'hd_mismatch' });
    expect((await h.service('GET', `/v1/users/${sub}`)).status).toBe(404);
  });
});
