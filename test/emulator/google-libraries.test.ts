import { Readable } from 'node:stream';
import { OAuth2Client } from 'google-auth-library';
import { google } from 'googleapis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type EmulatorFixture } from './support.js';

/**
 * Issue 2's judge: Google's own client libraries, unchanged, against the emulator. They are
 * pointed at it only through their public options (see docs/emulator.md).
 */
describe('unchanged Google client libraries against the emulator', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  function oauthClient(): OAuth2Client {
    const { server } = f.emulator.clients;
    const base = f.emulator.url;
    return new OAuth2Client({
      clientId: server.clientId,
      clientSecret: server.clientSecret,
      endpoints: {
        oauth2TokenUrl: `${base}/token`,
        oauth2AuthBaseUrl: `${base}/o/oauth2/v2/auth`,
        oauth2RevokeUrl: `${base}/revoke`,
        tokenInfoUrl: `${base}/tokeninfo`,
        oauth2FederatedSignonPemCertsUrl: `${base}/oauth2/v1/certs`,
        oauth2FederatedSignonJwkCertsUrl: `${base}/oauth2/v3/certs`,
      },
    });
  }

  it('google-auth-library: exchanges a code, verifies the ID token, refreshes, revokes', async () => {
    const { sub } = await f.user();
    const code = await f.code(sub, { client: 'ios' });
    const client = oauthClient();

    const { tokens } = await client.getToken({ code, redirect_uri: '' });
    expect(tokens.access_token).toMatch(/^ya29\./);
    expect(tokens.refresh_token).toMatch(/^1\/\/0/);
    client.setCredentials(tokens);

    // verifyIdToken with the emulator's certs (PEM, google-auth-library's default format).
    const ticket = await client.verifyIdToken({
      idToken: tokens.id_token!,
      audience: f.emulator.clients.server.clientId,
    });
    expect(ticket.getPayload()).toMatchObject({ sub, azp: f.emulator.clients.apps.ios });

    const info = await client.getTokenInfo(tokens.access_token!);
    expect(info.sub).toBe(sub);
    expect(info.scopes).toContain('openid');

    // Expired: the library refreshes by itself.
    f.clock.advance(3600);
    client.setCredentials({ ...tokens, expiry_date: Date.now() - 1 });
    const { token } = await client.getAccessToken();
    expect(token).toMatch(/^ya29\./);
    expect(token).not.toBe(tokens.access_token);

    await client.revokeToken(tokens.refresh_token!);
    await expect(f.refresh(tokens.refresh_token!)).resolves.toMatchObject({
      body: { error: 'invalid_grant' },
    });
  });

  it('google-auth-library: a reused code is an invalid_grant error', async () => {
    const { sub } = await f.user();
    const code = await f.code(sub);
    const client = oauthClient();
    await client.getToken({ code, redirect_uri: '' });
    await expect(client.getToken({ code, redirect_uri: '' })).rejects.toThrow(/invalid_grant/);
  });

  it('googleapis Drive v3: create, list, read and delete a file in appDataFolder', async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub));
    const auth = oauthClient();
    auth.setCredentials({
      access_token: body.access_token,
      refresh_token: body.refresh_token,
      expiry_date: Date.now() + 3_000_000,
    });
    const rootUrl = `${f.emulator.url}/`;
    const drive = google.drive({ version: 'v3', auth, rootUrl });

    const folder = await drive.files.get({ fileId: 'appDataFolder', fields: 'id' });
    expect(folder.data.id).toMatch(/^\w/);

    // googleapis' global rootUrl does not reach media upload URLs: they take it per call.
    const created = await drive.files.create(
      {
        requestBody: { name: 'config.json', parents: ['appDataFolder'] },
        media: { mimeType: 'application/json', body: Readable.from([JSON.stringify({ theme: 'dark' })]) },
        fields: 'id,name,parents',
      },
      { rootUrl },
    );
    expect(created.data).toMatchObject({ name: 'config.json', parents: [folder.data.id] });

    const list = await drive.files.list({
      spaces: 'appDataFolder',
      fields: 'nextPageToken, files(id, name)',
      pageSize: 10,
    });
    expect(list.data.files).toEqual([{ id: created.data.id, name: 'config.json' }]);

    const content = await drive.files.get({ fileId: created.data.id!, alt: 'media' });
    expect(content.data).toEqual({ theme: 'dark' });

    const renamed = await drive.files.update({
      fileId: created.data.id!,
      requestBody: { name: 'settings.json' },
      fields: 'name',
    });
    expect(renamed.data.name).toBe('settings.json');

    await drive.files.delete({ fileId: created.data.id! });
    const after = await drive.files.list({ spaces: 'appDataFolder', fields: 'files(id)' });
    expect(after.data.files).toEqual([]);
    await expect(drive.files.get({ fileId: created.data.id! })).rejects.toMatchObject({ status: 404 });
  });

  it("googleapis Drive v3: the appfolder alias, and Google's errors for missing scope and sharing", async () => {
    const { sub } = await f.user();
    const { body } = await f.exchange(await f.code(sub, { scope: 'openid email' }));
    const auth = oauthClient();
    auth.setCredentials({ access_token: body.access_token, expiry_date: Date.now() + 3_000_000 });
    const drive = google.drive({ version: 'v3', auth, rootUrl: `${f.emulator.url}/` });
    await expect(drive.files.get({ fileId: 'appfolder' })).rejects.toMatchObject({ status: 403 });

    const full = await f.exchange(
      await f.code(sub, { scope: 'openid https://www.googleapis.com/auth/drive.appdata' }),
    );
    auth.setCredentials({ access_token: full.body.access_token, expiry_date: Date.now() + 3_000_000 });
    const folder = await drive.files.get({ fileId: 'appfolder', fields: 'id,mimeType' });
    expect(folder.data.mimeType).toBe('application/vnd.google-apps.folder');
    await expect(drive.files.list({ fields: 'files(id)' })).rejects.toMatchObject({ status: 403 });
    const created = await drive.files.create({
      requestBody: { name: 'x', parents: ['appDataFolder'] },
      fields: 'id',
    });
    await expect(
      drive.permissions.create({ fileId: created.data.id!, requestBody: { role: 'reader', type: 'anyone' } }),
    ).rejects.toMatchObject({
      status: 403,
    });
  });
});
