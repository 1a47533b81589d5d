import { OAuth2Client } from 'google-auth-library';
import { google } from 'googleapis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type EmulatorFixture } from './support.js';

const errorInfo = (reason: string, method: string) => ({
  '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
  reason,
  domain: 'googleapis.com',
  metadata: { service: 'drive.googleapis.com', method: `google.apps.drive.v3.${method}` },
});

/**
 * Issue 15, point 5: Drive's error bodies carry the legacy `errors[]`, `status` and, where current
 * Drive sends it, the `details` block (https://developers.google.com/drive/api/guides/handle-errors,
 * https://cloud.google.com/apis/design/errors#error_info); the access token may come as the
 * `access_token` system parameter (https://cloud.google.com/apis/docs/system-parameters).
 */
describe('Drive errors as current Drive sends them', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it('401 without credentials: CREDENTIALS_MISSING naming the method', async () => {
    const response = await fetch(`${f.emulator.url}/drive/v3/files?spaces=appDataFolder`);
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({
      error: {
        code: 401,
        message: expect.stringMatching(/^Request is missing required authentication credential/),
        errors: [
          {
            message: 'Login Required.',
            domain: 'global',
            reason: 'required',
            location: 'Authorization',
            locationType: 'header',
          },
        ],
        status: 'UNAUTHENTICATED',
        details: [errorInfo('CREDENTIALS_MISSING', 'DriveFiles.List')],
      },
    });
  });

  it('401 for an expired token says ACCESS_TOKEN_EXPIRED; an unknown one has no details', async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub));
    const auth = new OAuth2Client();
    auth.setCredentials({ access_token: body.access_token, expiry_date: Date.now() + 3_000_000 });
    const drive = google.drive({ version: 'v3', auth, rootUrl: `${f.emulator.url}/` });
    await f.control('POST', '/emulator/access-tokens/expire', { sub });
    await expect(drive.files.get({ fileId: 'appDataFolder' })).rejects.toMatchObject({
      status: 401,
      response: {
        data: {
          error: {
            errors: [{ reason: 'authError' }],
            status: 'UNAUTHENTICATED',
            details: [errorInfo('ACCESS_TOKEN_EXPIRED', 'DriveFiles.Get')],
          },
        },
      },
    });
    const unknown = await fetch(`${f.emulator.url}/drive/v3/files/appDataFolder`, {
      headers: { authorization: 'Bearer ya29.not-a-token' },
    });
    expect(unknown.status).toBe(401);
    const json = (await unknown.json()) as { error: Record<string, unknown> };
    expect(json.error).toMatchObject({ status: 'UNAUTHENTICATED', errors: [{ reason: 'authError' }] });
    expect(json.error.details).toBeUndefined();
  });

  it('403 for a token without a Drive scope: ACCESS_TOKEN_SCOPE_INSUFFICIENT', async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub, { scope: 'openid email' }));
    const auth = new OAuth2Client();
    auth.setCredentials({ access_token: body.access_token, expiry_date: Date.now() + 3_000_000 });
    const drive = google.drive({ version: 'v3', auth, rootUrl: `${f.emulator.url}/` });
    await expect(
      drive.files.create({ requestBody: { name: 'x', parents: ['appDataFolder'] } }),
    ).rejects.toMatchObject({
      status: 403,
      response: {
        data: {
          error: {
            message: 'Request had insufficient authentication scopes.',
            errors: [{ reason: 'insufficientPermissions', domain: 'global' }],
            status: 'PERMISSION_DENIED',
            details: [errorInfo('ACCESS_TOKEN_SCOPE_INSUFFICIENT', 'DriveFiles.Create')],
          },
        },
      },
    });
  });

  it('takes the access token as the access_token query parameter', async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub));
    const url = `${f.emulator.url}/drive/v3/files?spaces=appDataFolder&access_token=${encodeURIComponent(body.access_token)}`;
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ kind: 'drive#fileList', files: [] });
    const bad = await fetch(`${f.emulator.url}/drive/v3/files?spaces=appDataFolder&access_token=nope`);
    expect(bad.status).toBe(401);
  });
});
