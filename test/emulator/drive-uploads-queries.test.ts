import { createHash } from 'node:crypto';
import { OAuth2Client } from 'google-auth-library';
import { google, type drive_v3 } from 'googleapis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type EmulatorFixture } from './support.js';

const KIB = 1024;
const CHUNK = 256 * KIB;

/** Deterministic, non-repeating test bytes. */
function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed + (i >> 8)) & 0xff;
  return out;
}

/**
 * Issue 15, point 5: Drive's resumable uploads, `q` and `orderBy` as apps use them
 * (https://developers.google.com/drive/api/guides/manage-uploads#resumable,
 * https://developers.google.com/drive/api/guides/ref-search-terms).
 */
describe('Drive: resumable uploads, queries and ordering', () => {
  let f: EmulatorFixture;
  let auth: OAuth2Client;
  let drive: drive_v3.Drive;
  let token: string;
  let sub: string;
  let url: string;

  beforeAll(async () => {
    f = await startFixture();
    url = f.emulator.url;
    ({ sub } = await f.user());
    const { body } = await f.exchange(await f.code(sub));
    token = body.access_token;
    const { server } = f.emulator.clients;
    auth = new OAuth2Client({ clientId: server.clientId, clientSecret: server.clientSecret });
    auth.setCredentials({ access_token: token, expiry_date: Date.now() + 3_000_000 });
    drive = google.drive({ version: 'v3', auth, rootUrl: `${url}/` });
  });
  afterAll(async () => {
    await f.close();
  });

  async function startSession(
    metadata: unknown,
    headers: Record<string, string> = {},
    path = '/upload/drive/v3/files',
    method = 'POST',
  ) {
    const response = await fetch(
      `${url}${path}?uploadType=resumable&fields=id,name,size,md5Checksum,parents`,
      {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json; charset=UTF-8',
          ...headers,
        },
        body: JSON.stringify(metadata),
      },
    );
    expect(response.status).toBe(200);
    const location = response.headers.get('location');
    expect(location).toMatch(/uploadType=resumable&upload_id=/);
    return location!;
  }

  function put(location: string, body: Buffer, contentRange?: string) {
    return fetch(location, {
      method: 'PUT',
      headers: contentRange === undefined ? {} : { 'content-range': contentRange },
      body,
    });
  }

  it("uploads a multi-chunk file through google-auth-library's authenticated transport, as apps do", async () => {
    // googleapis' drive.files.create({media}) always sends multipart (or media) uploads, even for
    // streams (googleapis-common's createAPIRequest): resumable uploads are driven by hand through
    // the same authenticated client.
    const content = bytes(2 * CHUNK + 12_345, 1);
    const started = await auth.request<unknown>({
      url: `${url}/upload/drive/v3/files?uploadType=resumable`,
      method: 'POST',
      headers: {
        'content-type': 'application/json; charset=UTF-8',
        'x-upload-content-type': 'application/octet-stream',
        'x-upload-content-length': String(content.length),
      },
      data: JSON.stringify({ name: 'backup-big.bin', parents: ['appDataFolder'] }),
    });
    const session = started.headers.get('location')!;
    expect(session).toContain('upload_id=');

    let offset = 0;
    let last: { status: number; data: unknown; headers: Headers } | undefined;
    while (offset < content.length) {
      const end = Math.min(offset + CHUNK, content.length);
      const response = await auth.request<unknown>({
        url: session,
        method: 'PUT',
        headers: { 'content-range': `bytes ${offset}-${end - 1}/${content.length}` },
        data: content.subarray(offset, end),
        validateStatus: (status) => status === 308 || (status >= 200 && status < 300),
      });
      last = response;
      if (response.status === 308) {
        // Resume from the upper value of Range.
        offset = Number(/^bytes=0-(\d+)$/.exec(response.headers.get('range')!)![1]) + 1;
        expect(offset).toBe(end);
      } else {
        offset = end;
      }
    }
    expect(last!.status).toBe(200);
    const created = last!.data as drive_v3.Schema$File;
    expect(created).toMatchObject({ kind: 'drive#file', name: 'backup-big.bin' });

    const meta = await drive.files.get({ fileId: created.id!, fields: 'size,md5Checksum,parents' });
    expect(meta.data.size).toBe(String(content.length));
    expect(meta.data.md5Checksum).toBe(createHash('md5').update(content).digest('hex'));
    const media = await drive.files.get(
      { fileId: created.id!, alt: 'media' },
      { responseType: 'arraybuffer' },
    );
    expect(Buffer.from(media.data as ArrayBuffer).equals(content)).toBe(true);
  });

  it('answers 308 with Range, status queries, resent bytes and the 256 KiB rule', async () => {
    const content = bytes(3 * CHUNK + 100, 2);
    const total = content.length;
    const session = await startSession({ name: 'raw.bin', parents: ['appDataFolder'] });

    // Nothing received yet: 308 and no Range.
    let response = await put(session, Buffer.alloc(0), `bytes */${total}`);
    expect(response.status).toBe(308);
    expect(response.headers.get('range')).toBeNull();

    // A non-final chunk under 256 KiB is refused.
    response = await put(session, content.subarray(0, 1000), `bytes 0-999/${total}`);
    expect(response.status).toBe(400);
    expect(((await response.json()) as any).error.message).toMatch(/262144/);

    // A chunk that is not a multiple of 256 KiB: only whole units are kept.
    response = await put(session, content.subarray(0, CHUNK + 5000), `bytes 0-${CHUNK + 4999}/*`);
    expect(response.status).toBe(308);
    expect(response.headers.get('range')).toBe(`bytes=0-${CHUNK - 1}`);

    // A status query with the total still unknown.
    response = await put(session, Buffer.alloc(0), 'bytes */*');
    expect(response.status).toBe(308);
    expect(response.headers.get('range')).toBe(`bytes=0-${CHUNK - 1}`);

    // A gap is refused; resent bytes are skipped.
    response = await put(
      session,
      content.subarray(2 * CHUNK, 3 * CHUNK),
      `bytes ${2 * CHUNK}-${3 * CHUNK - 1}/${total}`,
    );
    expect(response.status).toBe(400);
    response = await put(session, content.subarray(0, 3 * CHUNK), `bytes 0-${3 * CHUNK - 1}/${total}`);
    expect(response.status).toBe(308);
    expect(response.headers.get('range')).toBe(`bytes=0-${3 * CHUNK - 1}`);

    // A total that changes is refused.
    response = await put(
      session,
      content.subarray(3 * CHUNK),
      `bytes ${3 * CHUNK}-${total - 1}/${total + 1}`,
    );
    expect(response.status).toBe(400);

    // The last chunk may be any size; the answer is the file with the fields asked at the start.
    response = await put(session, content.subarray(3 * CHUNK), `bytes ${3 * CHUNK}-${total - 1}/${total}`);
    expect(response.status).toBe(200);
    const file = (await response.json()) as any;
    expect(file).toEqual({
      id: expect.any(String),
      name: 'raw.bin',
      size: String(total),
      md5Checksum: createHash('md5').update(content).digest('hex'),
      parents: [expect.any(String)],
    });

    // Asking again after completion answers the file again.
    response = await put(session, Buffer.alloc(0), `bytes */${total}`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as any).id).toBe(file.id);
  });

  it('uploads in one request, updates an existing file with PATCH, and expires sessions after a week', async () => {
    const one = await startSession({
      name: 'small.json',
      parents: ['appDataFolder'],
      mimeType: 'application/json',
    });
    let response = await put(one, Buffer.from('{"v":1}'));
    expect(response.status).toBe(200);
    const { id } = (await response.json()) as { id: string };

    const update = await startSession({ name: 'small-v2.json' }, {}, `/upload/drive/v3/files/${id}`, 'PATCH');
    expect(update).toContain(`/upload/drive/v3/files/${id}?`);
    response = await put(update, Buffer.from('{"v":2}'), 'bytes 0-6/7');
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ id, name: 'small-v2.json', size: '7' });
    const media = await drive.files.get({ fileId: id, alt: 'media' });
    expect(media.data).toEqual({ v: 2 });

    // Metadata is checked when the session starts.
    const refused = await fetch(`${url}/upload/drive/v3/files?uploadType=resumable`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'sheet',
        parents: ['appDataFolder'],
        mimeType: 'application/vnd.google-apps.spreadsheet',
      }),
    });
    expect(refused.status).toBe(403);

    const stale = await startSession({ name: 'stale.bin', parents: ['appDataFolder'] });
    f.clock.advance(7 * 86_400 + 1);
    response = await put(stale, Buffer.from('x'));
    expect(response.status).toBe(404);
    response = await put(
      `${url}/upload/drive/v3/files?uploadType=resumable&upload_id=nope`,
      Buffer.from('x'),
    );
    expect(response.status).toBe(404);
  });

  describe('q and orderBy', () => {
    let listDrive: drive_v3.Drive;
    const ids: Record<string, string> = {};

    beforeAll(async () => {
      const user = await f.user();
      const { body } = await f.exchange(await f.code(user.sub));
      const listAuth = new OAuth2Client();
      listAuth.setCredentials({ access_token: body.access_token, expiry_date: Date.now() + 3_000_000 });
      listDrive = google.drive({ version: 'v3', auth: listAuth, rootUrl: `${url}/` });
      // Three backups ten minutes apart, created out of name order; the clock moves between them.
      for (const [name, device] of [
        ['backup-2.db', 'phone'],
        ['backup-10.db', 'tablet'],
        ['Backup-1.db', 'phone'],
      ] as const) {
        const created = await listDrive.files.create({
          requestBody: {
            name,
            parents: ['appDataFolder'],
            appProperties: { kind: 'backup', device },
            properties: { shared: device === 'tablet' ? 'yes' : 'no' },
          },
          fields: 'id',
        });
        ids[name] = created.data.id!;
        f.clock.advance(600);
      }
    });

    const list = async (params: drive_v3.Params$Resource$Files$List) =>
      (
        await listDrive.files.list({
          spaces: 'appDataFolder',
          fields: 'nextPageToken,files(name)',
          ...params,
        })
      ).data.files!.map((file) => file.name);

    it('picks the latest backup with orderBy modifiedTime desc and pageSize 1', async () => {
      expect(await list({ orderBy: 'modifiedTime desc', pageSize: 1 })).toEqual(['Backup-1.db']);
      // An update makes another file the latest.
      f.clock.advance(60);
      await listDrive.files.update({ fileId: ids['backup-2.db']!, requestBody: { description: 'touched' } });
      expect(await list({ orderBy: 'modifiedTime desc', pageSize: 1 })).toEqual(['backup-2.db']);
      expect(await list({ orderBy: 'createdTime desc' })).toEqual([
        'Backup-1.db',
        'backup-10.db',
        'backup-2.db',
      ]);
      expect(await list({ orderBy: 'createdTime' })).toEqual(['backup-2.db', 'backup-10.db', 'Backup-1.db']);
    });

    it('orders by name, name_natural and several keys, and refuses an unknown key', async () => {
      expect(await list({ orderBy: 'name' })).toEqual(['Backup-1.db', 'backup-10.db', 'backup-2.db']);
      expect(await list({ orderBy: 'name_natural desc' })).toEqual([
        'backup-10.db',
        'backup-2.db',
        'Backup-1.db',
      ]);
      expect(await list({ orderBy: 'folder,quotaBytesUsed,name desc' })).toEqual([
        'backup-2.db',
        'backup-10.db',
        'Backup-1.db',
      ]);
      await expect(list({ orderBy: 'size desc' })).rejects.toMatchObject({
        status: 400,
        response: { data: { error: { errors: [{ reason: 'invalid', location: 'orderBy' }] } } },
      });
      await expect(list({ orderBy: 'name descending' })).rejects.toMatchObject({ status: 400 });
    });

    it('filters on modifiedTime and createdTime comparisons', async () => {
      const all = (
        await listDrive.files.list({
          spaces: 'appDataFolder',
          fields: 'files(name,createdTime,modifiedTime)',
          orderBy: 'createdTime',
        })
      ).data.files!;
      const second = all[1]!.createdTime!;
      expect(await list({ q: `createdTime > '${second}'` })).toEqual(['Backup-1.db']);
      expect(await list({ q: `createdTime >= '${second}'`, orderBy: 'createdTime' })).toEqual([
        'backup-10.db',
        'Backup-1.db',
      ]);
      expect(await list({ q: `createdTime < '${second}'` })).toEqual(['backup-2.db']);
      expect(await list({ q: `createdTime <= '${second}'`, orderBy: 'createdTime' })).toEqual([
        'backup-2.db',
        'backup-10.db',
      ]);
      expect(await list({ q: `createdTime = '${second}'` })).toEqual(['backup-10.db']);
      // Without an offset the time is UTC; with one it is converted.
      const utc = new Date(Date.parse(second) + 1000).toISOString().slice(0, 19);
      expect(await list({ q: `createdTime > '${utc}' and name contains 'Back'` })).toEqual(['Backup-1.db']);
      const local = new Date(Date.parse(second) + 2 * 3_600_000 - 1000).toISOString().slice(0, 19);
      expect(await list({ q: `createdTime < '${local}+02:00'` })).toEqual(['backup-2.db']);
      await expect(list({ q: "modifiedTime > 'yesterday'" })).rejects.toMatchObject({ status: 400 });
    });

    it('filters on appProperties and properties, with and, or, not and parentheses', async () => {
      expect(
        await list({ q: "appProperties has { key='device' and value='phone' }", orderBy: 'name' }),
      ).toEqual(['Backup-1.db', 'backup-2.db']);
      expect(await list({ q: "properties has { key='shared' and value='yes' }" })).toEqual(['backup-10.db']);
      expect(await list({ q: "appProperties has { key='shared' and value='yes' }" })).toEqual([]);
      expect(
        await list({
          q: "'appDataFolder' in parents and trashed = false and not (appProperties has { key='device' and value='phone' } or name = 'x')",
        }),
      ).toEqual(['backup-10.db']);
      expect(await list({ q: "name = 'backup-2.db' or name = 'Backup-1.db'", orderBy: 'name' })).toEqual([
        'Backup-1.db',
        'backup-2.db',
      ]);
      expect(await list({ q: "name contains 'back'" })).toHaveLength(2);
      for (const q of [
        "appProperties has { key='device' }",
        "fullText contains 'x'",
        "name = 'unterminated",
        "(name = 'x'",
        "'someOtherFolder' in parents",
      ]) {
        await expect(list({ q })).rejects.toMatchObject({ status: 400 });
      }
    });

    it('clears a property set to null and keeps a modifiedTime the app sets', async () => {
      const updated = await listDrive.files.update({
        fileId: ids['backup-10.db']!,
        requestBody: {
          appProperties: { device: null, restored: 'true' } as unknown as Record<string, string>,
          modifiedTime: '2020-01-02T03:04:05.678Z',
        },
        fields: 'appProperties,modifiedTime',
      });
      expect(updated.data).toEqual({
        appProperties: { kind: 'backup', restored: 'true' },
        modifiedTime: '2020-01-02T03:04:05.678Z',
      });
      expect(await list({ q: "modifiedTime < '2021-01-01T00:00:00'" })).toEqual(['backup-10.db']);
    });
  });
});
