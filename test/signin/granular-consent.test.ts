import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRIVE_APPDATA, SIGNIN_SCOPES, startHarness, type Harness } from '../support/harness.js';

const BASIC = 'openid email profile';

/**
 * Issue 15, point 2: granular consent end to end. The user unticks drive.appdata on Google's
 * consent screen and still signs in; behalf says which scopes are missing and what to do, keeps the
 * grant's scopes, and a call that needs the withheld scope is SCOPE_NOT_GRANTED.
 */
describe('granular consent through behalf', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const codeFor = async (sub: string, body: Record<string, unknown>) =>
    (
      await h.control<{ code: string }>('POST', '/emulator/codes', {
        sub,
        client_id: h.emulator.clients.apps.ios,
        scope: SIGNIN_SCOPES,
        ...body,
      })
    ).code;

  it('a user who withheld drive.appdata signs in, is told what is missing, and calls needing it are SCOPE_NOT_GRANTED', async () => {
    const { sub } = await h.control<{ sub: string }>('POST', '/emulator/users', {
      email: 'granular@example.com',
    });
    const response = await h.signIn(await codeFor(sub, { granted_scopes: BASIC }));
    expect(response.status).toBe(201);
    const body = (await response.json()) as Record<string, any>;
    expect(body.grant).toMatchObject({
      status: 'active',
      offline_access: true,
      missing_scopes: [DRIVE_APPDATA],
    });
    expect(body.grant.scopes).not.toContain(DRIVE_APPDATA);
    expect(body.grant.scopes).toContain('openid');
    expect(body.action).toBe('request_scopes');

    // The grant's scopes, as the service API shows them.
    const user = (await (await h.service('GET', `/v1/users/${sub}`)).json()) as Record<string, any>;
    expect(user.grant.scopes).toEqual(body.grant.scopes);

    // Drive refuses the token (403 insufficient_scope): behalf says so in its own terms.
    const call = await h.service('GET', `/v1/users/${sub}/google/drive/v3/files?spaces=appDataFolder`);
    expect(call.status).toBe(403);
    const refusal = (await call.json()) as Record<string, any>;
    expect(refusal).toMatchObject({
      error: 'SCOPE_NOT_GRANTED',
      reason: 'insufficient_scope',
      action: 'request_scopes',
    });
    expect(refusal.granted_scopes).toEqual(body.grant.scopes);
    // And the library's fetch, as a job would call it.
    await expect(
      h.runtime.behalf.fetch(sub, `${h.emulator.url}/drive/v3/files?spaces=appDataFolder`),
    ).rejects.toMatchObject({ code: 'SCOPE_NOT_GRANTED' });

    // Asked again (incremental authorization), the user grants it: everything works.
    const again = await h.signIn(await codeFor(sub, { scope: DRIVE_APPDATA }));
    expect(again.status).toBe(200);
    const granted = (await again.json()) as Record<string, any>;
    expect(granted.grant.missing_scopes).toEqual([]);
    expect(granted.grant.scopes).toContain(DRIVE_APPDATA);
    expect(granted.action).toBe('none');
    const works = await h.service('GET', `/v1/users/${sub}/google/drive/v3/files?spaces=appDataFolder`);
    expect(works.status).toBe(200);
  });
});
