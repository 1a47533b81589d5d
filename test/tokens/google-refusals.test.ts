import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * Issue 15, point 4: behalf's answer to Google's refusals that need a person, end to end (sign-in
 * through behalf's server, then a token request that refreshes at the emulator).
 */
describe("Google's refusals at refresh", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const fault = (body: Record<string, unknown>) =>
    h.control('POST', '/emulator/faults', { path: '/token', ...body });
  /** A signed-in user whose access token is due, so the next token request refreshes. */
  const due = async () => {
    const sub = await h.signedInUser();
    h.clock.advance(3600);
    return sub;
  };
  const grantOf = async (sub: string) =>
    ((await (await h.service('GET', `/v1/users/${sub}`)).json()) as { grant: Record<string, unknown> }).grant;

  it('invalid_grant with error_subtype invalid_rapt: needs consent, reason reauth_required', async () => {
    const sub = await due();
    await fault({
      status: 400,
      error: 'invalid_grant',
      error_description: 'reauth related error (invalid_rapt)',
      error_subtype: 'invalid_rapt',
    });
    const response = await h.service('POST', `/v1/users/${sub}/access-token`);
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({
      error: 'NEEDS_CONSENT',
      reason: 'reauth_required',
      google_error: 'invalid_grant',
      google_error_subtype: 'invalid_rapt',
    });
    expect((await grantOf(sub)).status).toBe('needs_consent');

    // A new sign-in (the user reauthenticated) brings the grant back.
    const again = await h.signIn(await h.mintCode(sub, { prompt: 'consent' }));
    expect(((await again.json()) as { grant: { status: string } }).grant.status).toBe('active');
    expect((await h.service('POST', `/v1/users/${sub}/access-token`)).status).toBe(200);
  });

  it('plain invalid_grant keeps its own reason', async () => {
    const sub = await due();
    await fault({
      status: 400,
      error: 'invalid_grant',
      error_description: 'Token has been expired or revoked.',
    });
    const response = await h.service('POST', `/v1/users/${sub}/access-token`);
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ error: 'NEEDS_CONSENT', reason: 'invalid_grant' });
  });

  it('deleted_client: CLIENT_MISCONFIGURED that says the client was deleted; the grant is not touched', async () => {
    const sub = await due();
    await fault({ status: 401, error: 'deleted_client', error_description: 'The OAuth client was deleted.' });
    const response = await h.service('POST', `/v1/users/${sub}/access-token`);
    expect(response.status).toBe(502);
    const body = (await response.json()) as Record<string, string>;
    expect(body).toMatchObject({ error: 'CLIENT_MISCONFIGURED', reason: 'deleted_client' });
    expect(body.message).toMatch(/deleted in the Google Cloud console/);
    expect((await grantOf(sub)).status).toBe('active');
  });

  it("admin_policy_enforced: needs consent, and the message names the user's administrator", async () => {
    const sub = await due();
    await fault({ status: 400, error: 'admin_policy_enforced' });
    const response = await h.service('POST', `/v1/users/${sub}/access-token`);
    expect(response.status).toBe(409);
    const body = (await response.json()) as Record<string, string>;
    expect(body).toMatchObject({ error: 'NEEDS_CONSENT', reason: 'admin_policy_enforced' });
    expect(body.message).toMatch(/administrator/);
    expect((await grantOf(sub)).status).toBe('needs_consent');
  });
});
