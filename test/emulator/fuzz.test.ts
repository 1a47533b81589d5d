import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type EmulatorFixture } from './support.js';
import { prng } from '../support/prng.js';

const ROUTES: Array<[string, string]> = [
  ['POST', '/token'],
  ['POST', '/oauth2/v4/token'],
  ['GET', '/token'],
  ['POST', '/revoke'],
  ['GET', '/tokeninfo'],
  ['POST', '/tokeninfo'],
  ['GET', '/v1/userinfo'],
  ['GET', '/o/oauth2/v2/auth'],
  ['POST', '/o/oauth2/v2/auth/decision'],
  ['GET', '/drive/v3/files'],
  ['GET', '/drive/v3/files/appDataFolder'],
  ['POST', '/drive/v3/files'],
  ['PATCH', '/drive/v3/files/xyz'],
  ['DELETE', '/drive/v3/files/xyz'],
  ['POST', '/upload/drive/v3/files'],
  ['PATCH', '/upload/drive/v3/files/xyz'],
  ['POST', '/emulator/users'],
  ['POST', '/emulator/codes'],
  ['POST', '/emulator/id-tokens'],
  ['POST', '/emulator/grants/revoke'],
  ['POST', '/emulator/clock'],
  ['POST', '/emulator/faults'],
  ['POST', '/emulator/drive/files'],
  ['GET', '/nowhere/at/all'],
];

const CONTENT_TYPES = [
  'application/json',
  'application/x-www-form-urlencoded',
  'text/plain',
  'multipart/related; boundary=xyz',
  'multipart/related',
  'application/octet-stream',
  'application/json; charset=latin-9',
  '',
  '*/*; q=',
];

function garbage(random: () => number): string | Buffer {
  const pick = Math.floor(random() * 10);
  const text = (n: number) =>
    Array.from({ length: n }, () => String.fromCharCode(Math.floor(random() * 0x3000))).join('');
  switch (pick) {
    case 0:
      return Buffer.from(
        Array.from({ length: Math.floor(random() * 512) }, () => Math.floor(random() * 256)),
      );
    case 1:
      return '{"a":'.repeat(200);
    case 2:
      return JSON.stringify({
        email: 123,
        sub: [],
        client_id: {},
        scope: null,
        advance_seconds: 'x',
        path: 5,
        size: -1,
      });
    case 3:
      return JSON.stringify({
        email: 'a@b.co',
        client_id: 'x',
        scope: 'openid',
        advance_seconds: 1e308,
        size: 1e12,
        content_base64: '%%%',
      });
    case 4:
      return `grant_type=${encodeURIComponent(text(20))}&code=${encodeURIComponent(text(40))}&code=dup&client_id=&refresh_token=${'A'.repeat(5000)}`;
    case 5:
      return '--xyz\r\nContent-Type: application/json\r\n\r\n{not json}\r\n--xyz\r\n\r\nbody\r\n--xyz--';
    case 6:
      return JSON.stringify([1, 2, 3]);
    case 7:
      return text(Math.floor(random() * 300));
    case 8:
      return JSON.stringify({
        __proto__: { polluted: true },
        constructor: { prototype: { x: 1 } },
        name: 'x'.repeat(40_000),
      });
    default:
      return '';
  }
}

/**
 * Issue 2: malformed requests of every kind get a Google-shaped 4xx, never a 500 or a crash.
 */
describe('emulator fuzz', () => {
  let f: EmulatorFixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it("answers thousands of malformed requests with 4xx, in Google's shapes", async () => {
    const random = prng(20261125);
    const failures: string[] = [];
    let sent = 0;
    for (let round = 0; round < 120; round++) {
      await Promise.all(
        ROUTES.map(async ([method, path]) => {
          const contentType = CONTENT_TYPES[Math.floor(random() * CONTENT_TYPES.length)]!;
          const body = method === 'GET' || method === 'DELETE' ? undefined : garbage(random);
          const query =
            random() < 0.3
              ? `?fields=${encodeURIComponent('files(id,(')}&pageSize=-1&uploadType=${random() < 0.5 ? 'multipart' : 'zzz'}&access_token=x`
              : '';
          const headers: Record<string, string> = {};
          if (contentType !== '' && body !== undefined) headers['content-type'] = contentType;
          if (random() < 0.3)
            headers.authorization = random() < 0.5 ? 'Bearer ' + 'x'.repeat(3000) : 'Basic %%%';
          const response = await fetch(`${f.emulator.url}${path}${query}`, {
            method,
            headers,
            ...(body === undefined ? {} : { body }),
          });
          sent++;
          const text = await response.text();
          const type = response.headers.get('content-type') ?? '';
          const ok = response.status < 500;
          let shaped = true;
          if (response.status >= 400 && type.includes('json')) {
            const json = JSON.parse(text) as { error?: unknown };
            shaped =
              typeof json.error === 'string' ||
              (typeof json.error === 'object' && json.error !== null && 'code' in json.error);
          } else if (response.status >= 400) {
            shaped = type.includes('text/html') && (path.startsWith('/o/oauth2') || path === '/revoke');
          }
          if (!ok || !shaped)
            failures.push(
              `${method} ${path}${query} [${contentType}] → ${response.status} ${text.slice(0, 120)}`,
            );
        }),
      );
    }
    expect(failures).toEqual([]);
    expect(sent).toBe(120 * ROUTES.length);
  });

  it('answers huge inputs with 413 or 4xx', async () => {
    const huge = 'x'.repeat(3 * 1024 * 1024);
    for (const [method, path] of ROUTES.filter(([m]) => m !== 'GET' && m !== 'DELETE')) {
      const response = await fetch(`${f.emulator.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ huge }),
      });
      expect(response.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(response.status, `${method} ${path}`).toBeLessThan(500);
    }
  });

  it('still serves normally afterwards', async () => {
    const { sub } = await f.user();
    expect((await f.exchange(await f.code(sub))).status).toBe(200);
  });
});
