/**
 * The admin console over HTTP, no browser (issue 13, point 4): the session cookie and its
 * timeouts on the injected clock, CSRF and cross-site refusals, sessions ended by sign-out and by
 * revoking their key, on every instance sharing the database; the pages and their actions; and no
 * token the emulator issued on any page. The browser half is ./console-browser.test.ts.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PostgresSweepRunStore, SqliteSweepRunStore } from '../../src/admin/index.js';
import { createRuntime, createServer } from '../../src/app.js';
import { loopbackFetch, loopbackRequest } from '../support/no-network.js';
import { Receiver } from '../webhooks/receiver.js';
import { startHarness, type Harness } from '../support/harness.js';
import { consoleClient, csrfOf, type ConsoleClient, type Page } from './console-client.js';

const MINUTE = 60;

describe('admin console', () => {
  let h: Harness;
  /** Every page any client of this file was answered, for the leak scan at the end. */
  const pages: Page[] = [];
  const client = () => consoleClient(h.url, pages);

  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  async function signedInClient(): Promise<ConsoleClient> {
    const c = client();
    await c.signIn(h.apiKey);
    return c;
  }

  /** A user signed in through behalf with this email. */
  async function userWithEmail(email: string): Promise<string> {
    const { sub, code } = await h.newUserWithCode({ email });
    expect((await h.signIn(code)).status).toBe(201);
    return sub;
  }

  const grantOf = async (sub: string) =>
    (await h.runtime.store.getGrant(sub, h.runtime.behalf.clientId))?.status;

  describe('sign-in and the session cookie', () => {
    it('a wrong key stays on the sign-in page with an error and sets no cookie; the right one opens a session', async () => {
      const c = client();
      for (const key of ['', 'nonsense', `${h.apiKey.slice(0, -1)}${h.apiKey.endsWith('A') ? 'B' : 'A'}`]) {
        const refused = await c.post('/admin/sign-in', { key });
        expect(refused.status).toBe(401);
        expect(refused.setCookie).toBeNull();
        expect(refused.html).toContain('That is not a valid service API key');
        expect(refused.html).toContain('<form method="post" action="/admin/sign-in"');
        if (key !== '') expect(refused.html).not.toContain(key);
      }
      const accepted = await c.signIn(h.apiKey);
      expect(accepted.location).toBe('/admin/users');
      const users = await c.get('/admin/users');
      expect(users.status).toBe(200);
      expect(users.html).toContain('<h1>Users</h1>');
    });

    it('the cookie is HttpOnly, SameSite=Strict, Path=/admin, not Secure over plain loopback HTTP, and is not the key', async () => {
      const { setCookie } = await client().post('/admin/sign-in', { key: h.apiKey });
      const [pair, ...attributes] = setCookie!.split(';').map((s) => s.trim());
      expect(pair).toMatch(/^behalf_admin=[A-Za-z0-9_-]{43}$/);
      expect(attributes.sort()).toEqual(['HttpOnly', 'Path=/admin', 'SameSite=Strict']);
      expect(setCookie).not.toContain(h.apiKey);
      expect(setCookie).not.toContain(h.apiKey.slice(17));
    });

    it('sign-in returns to the console page asked for, and to nothing outside the console', async () => {
      const c = client();
      const asked = await c.get('/admin/sweep');
      expect(asked.status).toBe(303);
      expect(asked.location).toBe('/admin/sign-in?next=%2Fadmin%2Fsweep');
      const form = await c.get(asked.location!);
      expect(form.html).toContain('name="next" value="/admin/sweep"');
      const back = await c.post('/admin/sign-in', { key: h.apiKey, next: '/admin/sweep' });
      expect(back.location).toBe('/admin/sweep');
      for (const next of [
        'https://evil.example/admin/users',
        '//evil.example/admin/users',
        '/admin/../v1/users',
        '/admin/users\\x',
      ]) {
        expect((await c.post('/admin/sign-in', { key: h.apiKey, next })).location).toBe('/admin/users');
      }
    });

    it('every page is sent with CSP default-src self, no framing, no caching, no referrer to other sites', async () => {
      const c = await signedInClient();
      for (const path of [
        '/admin/sign-in',
        '/admin/users',
        '/admin/sweep',
        '/admin/api-keys',
        '/admin/nowhere',
      ]) {
        const page = await c.get(path);
        expect(page.headers.get('content-security-policy')).toBe(
          "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        );
        expect(page.headers.get('x-frame-options')).toBe('DENY');
        expect(page.headers.get('cache-control')).toBe('no-store');
        expect(page.headers.get('referrer-policy')).toBe('same-origin');
        expect(page.headers.get('access-control-allow-origin')).toBeNull();
        expect(page.html).not.toMatch(/<script|\sstyle=|\son[a-z]+=/i);
      }
      expect((await c.get('/admin/nowhere')).status).toBe(404);
    });
  });

  describe('no session, a wrong one, an expired one', () => {
    it('without a cookie, a page redirects to sign-in; a POST does too, changing nothing', async () => {
      const sub = await h.signedInUser();
      const c = client();
      expect(await c.get('/admin/users')).toMatchObject({
        status: 303,
        location: '/admin/sign-in?next=%2Fadmin%2Fusers',
      });
      const posted = await c.post(`/admin/users/${sub}/sign-out`, { csrf: 'x'.repeat(43) });
      expect(posted).toMatchObject({ status: 303, location: '/admin/sign-in' });
      expect(await grantOf(sub)).toBe('active');
    });

    it('an unknown or malformed cookie redirects with a clear message and clears the cookie', async () => {
      for (const value of ['A'.repeat(43), 'not a token', '']) {
        const c = client();
        c.cookie = `behalf_admin=${value}`;
        const page = await c.get('/admin/users');
        expect(page.status).toBe(303);
        if (value === '') continue;
        expect(page.location).toBe('/admin/sign-in?reason=invalid&next=%2Fadmin%2Fusers');
        expect(page.setCookie).toMatch(/^behalf_admin=; Max-Age=0; Path=\/admin; HttpOnly; SameSite=Strict$/);
        expect((await c.get(page.location!)).html).toContain('Your session has ended');
      }
    });

    it("the idle timeout slides with each request (15 minutes), on behalf's clock", async () => {
      const c = await signedInClient();
      for (let i = 0; i < 3; i++) {
        h.clock.advance(14 * MINUTE);
        expect((await c.get('/admin/users')).status).toBe(200);
      }
      h.clock.advance(15 * MINUTE);
      const expired = await c.get('/admin/users');
      expect(expired.status).toBe(303);
      expect(expired.location).toBe('/admin/sign-in?reason=expired&next=%2Fadmin%2Fusers');
      expect((await c.get(expired.location!)).html).toContain('Your session expired');
      // Ended for good: the same cookie does not come back to life.
      expect((await c.get('/admin/users')).location).toMatch(/^\/admin\/sign-in\?reason=invalid/);
    });

    it('a session ends 8 hours after sign-in however busy it is', async () => {
      const c = await signedInClient();
      for (let minutes = 0; minutes < 8 * 60 - 10; minutes += 10) {
        h.clock.advance(10 * MINUTE);
        expect((await c.get('/admin/sweep')).status, `after ${minutes + 10} minutes`).toBe(200);
      }
      h.clock.advance(10 * MINUTE);
      expect((await c.get('/admin/sweep')).location).toBe(
        '/admin/sign-in?reason=expired&next=%2Fadmin%2Fsweep',
      );
    });

    it('sign-out ends the session: the old cookie, replayed, opens nothing', async () => {
      const c = await signedInClient();
      const cookie = c.cookie;
      const out = await c.post('/admin/sign-out', {}, { fromPage: '/admin/users' });
      expect(out).toMatchObject({ status: 303, location: '/admin/sign-in?reason=signed_out' });
      expect(out.setCookie).toContain('Max-Age=0');
      c.cookie = cookie;
      expect((await c.get('/admin/users')).location).toBe(
        '/admin/sign-in?reason=invalid&next=%2Fadmin%2Fusers',
      );
    });
  });

  describe('CSRF and cross-site posts', () => {
    it("a state change needs this session's CSRF token and this origin; refused, nothing changes", async () => {
      const sub = await h.signedInUser();
      const c = await signedInClient();
      const other = await signedInClient();
      const otherToken = csrfOf((await other.get('/admin/users')).html);
      const ownToken = csrfOf((await c.get(`/admin/users/${sub}`)).html);
      const refusals: Array<[Record<string, string>, Record<string, string>, string]> = [
        [{}, {}, 'CSRF_TOKEN_INVALID'],
        [{ csrf: '' }, {}, 'CSRF_TOKEN_INVALID'],
        [{ csrf: ownToken.slice(0, -1) }, {}, 'CSRF_TOKEN_INVALID'],
        [{ csrf: otherToken }, {}, 'CSRF_TOKEN_INVALID'],
        [{ csrf: ownToken }, { origin: 'https://evil.example' }, 'ORIGIN_NOT_ALLOWED'],
        [{ csrf: ownToken }, { origin: 'null' }, 'ORIGIN_NOT_ALLOWED'],
        [{ csrf: ownToken }, { 'sec-fetch-site': 'cross-site' }, 'ORIGIN_NOT_ALLOWED'],
        [{ csrf: ownToken }, { 'sec-fetch-site': 'same-site' }, 'ORIGIN_NOT_ALLOWED'],
      ];
      for (const [fields, headers, code] of refusals) {
        const refused = await c.post(`/admin/users/${sub}/sign-out`, fields, { headers });
        expect(refused.status, JSON.stringify({ fields, headers })).toBe(403);
        expect(refused.html).toContain(`<code>${code}</code>`);
      }
      expect(await grantOf(sub)).toBe('active');
      // Another site cannot even sign a browser in.
      expect(
        (
          await client().post(
            '/admin/sign-in',
            { key: h.apiKey },
            { headers: { origin: 'https://evil.example' } },
          )
        ).status,
      ).toBe(403);
      // Forms only: a JSON body is refused whatever it holds.
      const json = await fetch(`${h.url}/admin/users/${sub}/sign-out`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: c.cookie! },
        body: JSON.stringify({ csrf: ownToken }),
      });
      expect(json.status).toBe(415);
      expect(await grantOf(sub)).toBe('active');

      const done = await c.post(`/admin/users/${sub}/sign-out`, { csrf: ownToken });
      expect(done).toMatchObject({ status: 303, location: `/admin/users/${sub}?done=signed-out` });
      expect(await grantOf(sub)).toBe('revoked');
    });
  });

  describe('API keys', () => {
    it('lists keys without the key, creates one shown once, revokes one, and shows when a key was last used', async () => {
      const c = await signedInClient();
      const created = await c.post(
        '/admin/api-keys',
        { name: 'billing <backend>' },
        { fromPage: '/admin/api-keys' },
      );
      expect(created.status).toBe(200);
      const key = /<p class="secret"[^>]*>(bhf_[0-9a-f]{12}_[A-Za-z0-9_-]{43})<\/p>/.exec(created.html)?.[1];
      expect(key).toBeDefined();
      expect(created.html).toContain('billing &lt;backend&gt;');
      expect(created.html).not.toContain('billing <backend>');
      const listing = await c.get('/admin/api-keys');
      expect(listing.html).not.toContain(key!.slice(17));
      expect(listing.html).toContain(`<code>${key!.slice(4, 16)}</code>`);

      // Used once through the service API: the listing says when.
      await fetch(`${h.url}/v1/users/nobody`, { headers: { authorization: `Bearer ${key}` } });
      const row = (await c.get('/admin/api-keys')).html
        .split('<tr>')
        .find((r) => r.includes(key!.slice(4, 16)))!;
      expect(row).toMatch(/<td><time datetime="[^"]+">/);

      const badLabel = await c.post('/admin/api-keys', { name: '   ' }, { fromPage: '/admin/api-keys' });
      expect(badLabel.status).toBe(400);
      expect(badLabel.html).toContain('An API key name is 1-100 characters');

      const revoked = await c.post(
        `/admin/api-keys/${key!.slice(4, 16)}/revoke`,
        {},
        { fromPage: '/admin/api-keys' },
      );
      expect(revoked).toMatchObject({ status: 303, location: '/admin/api-keys?done=revoked' });
      expect(
        (await fetch(`${h.url}/v1/users/nobody`, { headers: { authorization: `Bearer ${key}` } })).status,
      ).toBe(401);
      expect(
        (await c.post(`/admin/api-keys/${key!.slice(4, 16)}/revoke`, {}, { fromPage: '/admin/api-keys' }))
          .status,
      ).toBe(404);
      expect(
        (await c.post('/admin/api-keys/NOT-AN-ID/revoke', {}, { fromPage: '/admin/api-keys' })).status,
      ).toBe(400);
    });

    it("revoking a key ends the sessions opened with it, the revoker's own included", async () => {
      const admin = await signedInClient();
      const created = await admin.post(
        '/admin/api-keys',
        { name: 'temporary' },
        { fromPage: '/admin/api-keys' },
      );
      const key = /(bhf_[0-9a-f]{12}_[A-Za-z0-9_-]{43})/.exec(created.html)![1]!;
      const id = key.slice(4, 16);
      const [first, second] = [client(), client()];
      await first.signIn(key);
      await second.signIn(key);
      expect((await first.get('/admin/users')).status).toBe(200);

      await admin.post(`/admin/api-keys/${id}/revoke`, {}, { fromPage: '/admin/api-keys' });
      expect((await first.get('/admin/users')).location).toBe(
        '/admin/sign-in?reason=invalid&next=%2Fadmin%2Fusers',
      );
      expect((await second.get('/admin/sweep')).location).toBe(
        '/admin/sign-in?reason=invalid&next=%2Fadmin%2Fsweep',
      );
      expect((await admin.get('/admin/users')).status).toBe(200);

      // A session revoking its own key is ended at once.
      const own = await admin.post('/admin/api-keys', { name: 'self' }, { fromPage: '/admin/api-keys' });
      const selfKey = /(bhf_[0-9a-f]{12}_[A-Za-z0-9_-]{43})/.exec(own.html)![1]!;
      const self = client();
      await self.signIn(selfKey);
      const ended = await self.post(
        `/admin/api-keys/${selfKey.slice(4, 16)}/revoke`,
        {},
        { fromPage: '/admin/api-keys' },
      );
      expect(ended).toMatchObject({ status: 303, location: '/admin/sign-in?reason=invalid' });
      expect((await self.get('/admin/users')).status).toBe(303);
      expect((await client().post('/admin/sign-in', { key: selfKey })).status).toBe(401);
    });
  });

  describe('users: search, filter, pages', () => {
    it('finds users by email prefix (any case) or exact Google id, filters by grant status, and pages with a keyset cursor', async () => {
      const tag = `s${Date.now().toString(36)}`;
      const subs: string[] = [];
      for (let i = 0; i < 7; i++) subs.push(await userWithEmail(`${tag}-${i}@example.com`));
      await h.control('POST', '/emulator/grants/revoke', { sub: subs[2] });
      await h.runtime.tokens.getAccessToken(subs[2]!, { forceRefresh: true }).catch(() => undefined);
      await h.runtime.behalf.signOut(subs[4]!);
      const c = await signedInClient();
      const rows = (page: Page) =>
        [...page.html.matchAll(/<a href="\/admin\/users\/([^"?]+)">/g)].map((m) => decodeURIComponent(m[1]!));

      const found = await c.get(`/admin/users?q=${tag.toUpperCase()}`);
      expect(rows(found)).toEqual(subs.slice(0, 7));
      expect(found.html).toContain(`value="${tag.toUpperCase()}"`);
      expect(await c.get(`/admin/users?q=${tag}-3`).then(rows)).toEqual([subs[3]]);
      expect(await c.get(`/admin/users?q=${tag}&status=needs_consent`).then(rows)).toEqual([subs[2]]);
      expect(await c.get(`/admin/users?q=${tag}&status=revoked`).then(rows)).toEqual([subs[4]]);
      const revoked = await c.get('/admin/users?status=revoked');
      expect(rows(revoked)).toContain(subs[4]);
      expect(revoked.html).toContain('<option value="revoked" selected>');

      // An exact Google id is pointed to, above the email results.
      const exact = await c.get(`/admin/users?q=${subs[5]}`);
      expect(exact.html).toContain(`The user with Google id <code>${subs[5]}</code>`);

      // 50 a page: walk a bigger set by its "Next page" links.
      const many = `m${Date.now().toString(36)}`;
      const expected: string[] = [];
      for (let i = 0; i < 53; i++) {
        const sub = `admin-${many}-${String(i).padStart(2, '0')}`;
        await h.runtime.store.saveSignIn({
          user: {
            sub,
            email: `${many}-${String(i).padStart(2, '0')}@example.com`,
            emailVerified: true,
            name: null,
            givenName: null,
            familyName: null,
            picture: null,
            locale: null,
            hd: null,
          },
          clientId: h.runtime.behalf.clientId,
          scopes: ['openid'],
          refreshTokenCiphertext: undefined,
          accessTokenCiphertext: Buffer.from('x'),
          accessTokenExpiresAt: 0,
          now: h.clock.now(),
        });
        expected.push(sub);
      }
      const first = await c.get(`/admin/users?q=${many}`);
      expect(rows(first)).toEqual(expected.slice(0, 50));
      const next = /<a href="([^"]+)" rel="next">Next page<\/a>/.exec(first.html)![1]!.replace(/&amp;/g, '&');
      expect(next).toMatch(new RegExp(`^/admin/users\\?q=${many}&after=[A-Za-z0-9_-]+$`));
      const second = await c.get(next);
      expect(rows(second)).toEqual(expected.slice(50));
      expect(second.html).not.toContain('rel="next"');
      expect(second.html).toContain(`<a href="/admin/users?q=${many}">First page</a>`);

      // A cursor that is not one, or from another search, is a clear 400 page.
      const tampered = await c.get(`/admin/users?q=${many}&after=bm90IGEgY3Vyc29y`);
      expect(tampered.status).toBe(400);
      expect(tampered.html).toContain('<code>INVALID_REQUEST</code>');
      expect((await c.get(`${next.replace(`q=${many}`, 'q=zzz')}`)).status).toBe(400);
    });

    it('escapes what users put in their profile', async () => {
      const sub = await userWithEmail(`x${Date.now()}@example.com`);
      await h.runtime.store.saveSignIn({
        user: {
          sub,
          email: `"><script>alert(1)</script>@example.com`,
          emailVerified: true,
          name: '<img src=x onerror=alert(2)>',
          givenName: null,
          familyName: null,
          picture: 'javascript:alert(3)',
          locale: null,
          hd: null,
        },
        clientId: h.runtime.behalf.clientId,
        scopes: ['openid'],
        refreshTokenCiphertext: undefined,
        accessTokenCiphertext: Buffer.from('x'),
        accessTokenExpiresAt: 0,
        now: h.clock.now(),
      });
      const c = await signedInClient();
      for (const page of [await c.get('/admin/users?q=%22%3E'), await c.get(`/admin/users/${sub}`)]) {
        expect(page.status).toBe(200);
        expect(page.html).not.toContain('<script>alert(1)');
        expect(page.html).not.toContain('<img src=x');
        expect(page.html).not.toContain('href="javascript:');
        expect(page.html).toContain('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@example.com');
      }
    });
  });

  describe('one user', () => {
    it('shows profile, grant, last refresh, security events and job runs; check now refreshes through the token service', async () => {
      const sub = await userWithEmail(`one${Date.now()}@example.com`);
      const c = await signedInClient();
      const page = await c.get(`/admin/users/${sub}`);
      expect(page.status).toBe(200);
      for (const text of [
        'Google user id',
        'Picture URL',
        'Offline access</dt><dd>yes',
        'Last refresh at Google</dt><dd><span class="hint">none recorded',
        'No job has run',
        'No Cross-Account Protection event',
      ]) {
        expect(page.html).toContain(text);
      }
      const refreshes = async () =>
        (await h.control<{ refreshes_by_sub: Record<string, number> }>('GET', '/emulator/stats'))
          .refreshes_by_sub[sub] ?? 0;
      expect(await refreshes()).toBe(0);
      const checked = await c.post(`/admin/users/${sub}/check`, {}, { fromPage: `/admin/users/${sub}` });
      expect(checked).toMatchObject({ status: 303, location: `/admin/users/${sub}?check=ok` });
      // One refresh at Google, though the stored access token was still fresh.
      expect(await refreshes()).toBe(1);
      const shown = await c.get(checked.location!);
      expect(shown.html).toContain('Checked now: Google accepted the grant.');
      expect(shown.html).toMatch(
        /Last refresh at Google<\/dt><dd><time [^>]+>[^<]+<\/time> <span class="badge ok">ok<\/span>/,
      );

      // Google no longer accepts it: the check says so, and the page shows the grant needs consent.
      await h.control('POST', '/emulator/grants/revoke', { sub });
      const dead = await c.post(`/admin/users/${sub}/check`, {}, { fromPage: `/admin/users/${sub}` });
      expect(dead.location).toBe(`/admin/users/${sub}?check=NEEDS_CONSENT`);
      const deadPage = await c.get(dead.location!);
      expect(deadPage.html).toContain('Checked now: Google no longer accepts this grant');
      expect(deadPage.html).toContain('<span class="badge needs_consent">needs consent</span>');
      expect(deadPage.html).toContain('<code>NEEDS_CONSENT</code>');

      // A security event from Google shows in the history.
      const pushed = await h.control<{ delivered: boolean }>('POST', '/emulator/risc/events', {
        receiver_url: `${h.url}/v1/google/risc`,
        event: 'account-credential-change-required',
        sub,
      });
      expect(pushed.delivered).toBe(true);
      const withEvent = await c.get(`/admin/users/${sub}`);
      expect(withEvent.html).toContain('<code>account-credential-change-required</code>');
      expect(withEvent.html).toContain('credential change required');
    });

    it('an unknown or malformed user id is a clear page', async () => {
      const c = await signedInClient();
      const missing = await c.get('/admin/users/no-such-user');
      expect(missing.status).toBe(404);
      expect(missing.html).toContain('<code>USER_NOT_FOUND</code>');
      expect((await c.get(`/admin/users/${'x'.repeat(256)}`)).status).toBe(400);
    });

    it('delete asks for confirmation, then revokes at Google and deletes everything', async () => {
      const sub = await userWithEmail(`del${Date.now()}@example.com`);
      const c = await signedInClient();
      const confirm = await c.get(`/admin/users/${sub}/delete`);
      expect(confirm.html).toContain('<input type="checkbox" name="confirm" value="yes" required>');
      const unconfirmed = await c.post(`/admin/users/${sub}/delete`, { csrf: csrfOf(confirm.html) });
      expect(unconfirmed.status).toBe(400);
      expect(unconfirmed.html).toContain('Tick the box to confirm the deletion.');
      expect(await h.runtime.store.getUser(sub)).not.toBeNull();

      const deleted = await c.post(`/admin/users/${sub}/delete`, {
        csrf: csrfOf(confirm.html),
        confirm: 'yes',
      });
      expect(deleted).toMatchObject({ status: 303, location: '/admin/users?done=deleted' });
      expect(await h.runtime.store.getUser(sub)).toBeNull();
      expect((await c.get(deleted.location!)).html).toContain(
        'The user was deleted, and their grant revoked at Google.',
      );
      expect((await c.get(`/admin/users/${sub}`)).status).toBe(404);
    });
  });

  describe('health sweep', () => {
    it('starts a sweep, shows its progress while it runs (the page reloads itself), then its counts', async () => {
      const c = await signedInClient();
      expect((await c.get('/admin/sweep')).html).toContain('Start a sweep');
      const started = await c.post('/admin/sweep', { force: 'yes' }, { fromPage: '/admin/sweep' });
      expect(started).toMatchObject({ status: 303, location: '/admin/sweep?done=started' });
      const total = (await h.runtime.store.listGrants({ limit: 10_000 })).grants.length;
      let page: Page | undefined;
      await vi.waitFor(
        async () => {
          page = await c.get('/admin/sweep');
          expect(page.html).toContain('<span class="badge done">done</span>');
        },
        { timeout: 60_000, interval: 100 },
      );
      expect(page!.html).not.toContain('http-equiv="refresh"');
      expect(page!.html).toContain(`Checked ${total} of ${total} grants`);
      expect(page!.html).toContain('(every grant refreshed)');
    });

    it('while a sweep runs, its page reloads itself, and a second start shows the running one', async () => {
      await h.signedInUser();
      const c = await signedInClient();
      // Hold one refresh at Google: the sweep cannot finish until it is released.
      await h.control('POST', '/emulator/faults', { path: '/token', latency_ms: 100_000, count: 1 });
      expect((await c.post('/admin/sweep', { force: 'yes' }, { fromPage: '/admin/sweep' })).location).toBe(
        '/admin/sweep?done=started',
      );
      try {
        await vi.waitFor(
          // The fault is used up (listed with nothing remaining, or no longer listed) once the call it holds arrived.
          async () =>
            expect(
              (
                await h.control<{ faults: Array<{ remaining?: number }> }>('GET', '/emulator/faults')
              ).faults.some((f) => (f.remaining ?? 1) > 0),
            ).toBe(false),
          { timeout: 30_000, interval: 50 },
        );
        const running = await c.get('/admin/sweep');
        expect(running.html).toContain('Sweep in progress <span class="badge running">running</span>');
        expect(running.html).toContain('<meta http-equiv="refresh" content="2">');
        expect(running.html).toMatch(/<progress id="sweep-progress" max="\d+" value="\d+">/);
        expect(running.html).not.toContain('Start a sweep');
        const again = await c.post('/admin/sweep', { csrf: csrfOf(running.html) });
        expect(again.location).toBe('/admin/sweep?done=running');
        expect((await c.get(again.location!)).html).toContain(
          'A sweep is already running: here is its progress.',
        );
      } finally {
        await h.control('POST', '/emulator/faults/release');
        await h.control('DELETE', '/emulator/faults');
      }
      await vi.waitFor(
        async () =>
          expect((await c.get('/admin/sweep')).html).toContain(
            'Latest sweep <span class="badge done">done</span>',
          ),
        {
          timeout: 60_000,
          interval: 100,
        },
      );
    });
  });

  it('two instances over one database share sessions: one opened on either works on both, a sign-out on one ends it on both', async () => {
    const runtime = await createRuntime(h.config, {
      clock: h.clock,
      logger: pino({ level: 'silent' }),
      fetch: loopbackFetch,
      request: loopbackRequest,
    });
    const server = createServer(h.config, runtime);
    try {
      await server.listen({ port: 0, host: '127.0.0.1' });
      const address = server.server.address();
      const otherUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
      const here = await signedInClient();
      const there = consoleClient(otherUrl, pages);
      there.cookie = here.cookie;
      expect((await there.get('/admin/users')).status).toBe(200);
      // Idle time slid on one instance counts on the other.
      h.clock.advance(10 * MINUTE);
      expect((await there.get('/admin/users')).status).toBe(200);
      h.clock.advance(10 * MINUTE);
      expect((await here.get('/admin/users')).status).toBe(200);
      await there.post('/admin/sign-out', {}, { fromPage: '/admin/users' });
      expect((await here.get('/admin/users')).location).toBe(
        '/admin/sign-in?reason=invalid&next=%2Fadmin%2Fusers',
      );
    } finally {
      await server.close();
      await runtime.behalf.close();
    }
  });

  it('no page ever shows a token, code or secret the emulator issued', async () => {
    // Every page answered above, plus each page for every user there is now.
    const c = await signedInClient();
    const { users } = await h.runtime.store.searchUsers({ clientId: h.runtime.behalf.clientId, limit: 500 });
    for (const { user } of users) await c.get(`/admin/users/${encodeURIComponent(user.sub)}`);
    for (const path of ['/admin/users', '/admin/sweep', '/admin/api-keys']) await c.get(path);
    const { tokens } = await h.control<{ tokens: Array<{ type: string; value: string }> }>(
      'GET',
      '/emulator/tokens',
    );
    const { server_client: secret } = await h.control<{ server_client: { client_secret: string } }>(
      'GET',
      '/emulator/clients',
    );
    expect(new Set(tokens.map((t) => t.type))).toEqual(
      new Set(['access_token', 'code', 'id_token', 'refresh_token']),
    );
    // An ID token's header and payload are base64url JSON of what the pages show anyway (its
    // email also appears, so encoded, in a page cursor): its signature is what is secret.
    const secrets = [
      ...tokens.map((t) => (t.type === 'id_token' ? t.value.split('.')[2]! : t.value)),
      secret.client_secret,
      h.apiKey,
    ];
    for (const { value } of tokens.filter((t) => t.type === 'id_token'))
      expect(pages.some((p) => p.html.includes(value))).toBe(false);
    expect(pages.length).toBeGreaterThan(100);
    for (const page of pages) {
      const text = `${page.html}\n${page.location ?? ''}\n${page.setCookie ?? ''}`;
      for (const value of secrets) {
        // Any 16 characters of one is a leak.
        for (let i = 0; i + 16 <= value.length; i += 8)
          expect(text.includes(value.slice(i, i + 16)), 'a slice of an issued secret on a page').toBe(false);
      }
    }
  });
});

describe('admin console behind a TLS proxy, and its sign-in rate limit', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { BEHALF_TRUST_PROXY: 'true', BEHALF_SIGNIN_RATE_LIMIT: '3' } });
  });
  afterAll(async () => {
    await h.close();
  });

  const signInThroughProxy = (forwardedFor: string, key: string, proto = 'https') =>
    h.server.inject({
      method: 'POST',
      url: '/admin/sign-in',
      remoteAddress: '10.0.0.2',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-forwarded-for': forwardedFor,
        'x-forwarded-proto': proto,
        'x-forwarded-host': 'console.example.com',
        origin: 'https://console.example.com',
      },
      payload: new URLSearchParams({ key }).toString(),
    });

  it('the cookie is Secure, with the __Secure- prefix, and read back only under that name', async () => {
    const response = await signInThroughProxy('203.0.113.1', h.apiKey);
    expect(response.statusCode).toBe(303);
    const cookie = String(response.headers['set-cookie']);
    expect(cookie).toMatch(
      /^__Secure-behalf_admin=[A-Za-z0-9_-]{43}; Path=\/admin; HttpOnly; Secure; SameSite=Strict$/,
    );
    const page = (name: string) =>
      h.server.inject({
        method: 'GET',
        url: '/admin/users',
        remoteAddress: '10.0.0.2',
        headers: { 'x-forwarded-proto': 'https', cookie: `${name}=${cookie.split(';')[0]!.split('=')[1]}` },
      });
    expect((await page('__Secure-behalf_admin')).statusCode).toBe(200);
    expect((await page('behalf_admin')).statusCode).toBe(303);
  });

  it('the proxy saying the client came over plain HTTP is refused, as is an origin over http', async () => {
    const insecure = await signInThroughProxy('203.0.113.2', h.apiKey, 'http');
    expect(insecure.statusCode).toBe(403);
    expect(insecure.body).toContain('<code>INSECURE_TRANSPORT</code>');
    const httpOrigin = await h.server.inject({
      method: 'POST',
      url: '/admin/sign-in',
      remoteAddress: '10.0.0.2',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'console.example.com',
        origin: 'http://console.example.com',
      },
      payload: `key=${h.apiKey}`,
    });
    expect(httpOrigin.statusCode).toBe(403);
  });

  it('sign-in attempts are limited per client address (BEHALF_SIGNIN_RATE_LIMIT): then 429 with Retry-After, on the sign-in page', async () => {
    for (let i = 0; i < 3; i++)
      expect((await signInThroughProxy('198.51.100.7', 'bhf_wrong')).statusCode).toBe(401);
    const limited = await signInThroughProxy('198.51.100.7', h.apiKey);
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.body).toContain('Too many sign-in attempts from this address');
    expect(limited.body).toContain('<form method="post" action="/admin/sign-in"');
    expect(limited.headers['set-cookie']).toBeUndefined();
    // Another address is not affected.
    expect((await signInThroughProxy('198.51.100.8', h.apiKey)).statusCode).toBe(303);
  });
});

describe('admin console over plain HTTP from another machine', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('is refused: an API key must not cross a network in clear', async () => {
    const response = await h.server.inject({
      method: 'GET',
      url: '/admin/sign-in',
      remoteAddress: '192.0.2.10',
    });
    expect(response.statusCode).toBe(403);
    expect(response.body).toContain('<code>INSECURE_TRANSPORT</code>');
    expect(
      (await h.server.inject({ method: 'GET', url: '/admin/sign-in', remoteAddress: '127.0.0.1' }))
        .statusCode,
    ).toBe(200);
  });
});

describe('admin console: a sweep in progress when the server closes', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('is stopped and recorded as stopped before the database closes', async () => {
    await h.signedInUser();
    const c = consoleClient(h.url);
    await c.signIn(h.apiKey);
    await h.control('POST', '/emulator/faults', { path: '/token', latency_ms: 100_000, count: 1 });
    expect((await c.post('/admin/sweep', { force: 'yes' }, { fromPage: '/admin/sweep' })).location).toBe(
      '/admin/sweep?done=started',
    );
    await vi.waitFor(
      async () =>
        expect(
          (await h.control<{ faults: Array<{ remaining?: number }> }>('GET', '/emulator/faults')).faults.some(
            (f) => (f.remaining ?? 1) > 0,
          ),
        ).toBe(false),
      { timeout: 30_000, interval: 50 },
    );
    const closing = h.server.close();
    await h.control('POST', '/emulator/faults/release');
    await closing;
    const { database } = h.runtime;
    const runs = await (
      database.kind === 'sqlite' ? new SqliteSweepRunStore(database) : new PostgresSweepRunStore(database)
    ).recent(1);
    expect(runs[0]).toMatchObject({ status: 'stopped', finishedAt: expect.any(Number) });
  });
});

describe('admin console: webhooks page', () => {
  let h: Harness;
  let receiver: Receiver;
  beforeAll(async () => {
    [h, receiver] = await Promise.all([
      startHarness({ env: { BEHALF_WEBHOOK_ALLOW_PRIVATE: 'true' } }),
      Receiver.start(),
    ]);
  });
  afterAll(async () => {
    await h.close();
    await receiver.close();
  });

  it('adds an endpoint (its secret shown once), lists it and its deliveries, and removes it', async () => {
    const c = consoleClient(h.url);
    await c.signIn(h.apiKey);
    const empty = await c.get('/admin/webhooks');
    expect(empty.status).toBe(200);
    expect(empty.html).toContain('No endpoints yet');

    // Refused: the form comes back with what was typed and why.
    const refused = await c.post(
      '/admin/webhooks',
      { url: 'ftp://example.com/hook', events: 'grant.revoked' },
      { fromPage: '/admin/webhooks' },
    );
    expect(refused.status).toBe(400);
    expect(refused.html).toContain('value="ftp://example.com/hook"');
    expect(refused.html).toContain('<input type="checkbox" name="events" value="grant.revoked" checked>');
    const unknown = await c.post(
      '/admin/webhooks',
      { url: `${receiver.url}/hook`, events: 'grant.eaten' },
      { fromPage: '/admin/webhooks' },
    );
    expect(unknown.status).toBe(400);
    expect(unknown.html).toContain('Unknown event type');

    const added = await c.post(
      '/admin/webhooks',
      [
        ['url', `${receiver.url}/hook`],
        ['events', 'grant.revoked'],
        ['events', 'user.deleted'],
      ],
      { fromPage: '/admin/webhooks' },
    );
    expect(added.status).toBe(200);
    const secret = /<p class="secret"[^>]*>(whsec_[A-Za-z0-9+/=]+)<\/p>/.exec(added.html)?.[1];
    expect(secret).toBeDefined();
    const endpoints = await h.runtime.behalf.webhooks.listEndpoints();
    expect(endpoints.map((e) => e.events)).toEqual([['grant.revoked', 'user.deleted']]);

    // A sign-out from the console is an event; once sent, the page lists the delivery.
    const sub = await h.signedInUser();
    await c.post(`/admin/users/${sub}/sign-out`, {}, { fromPage: `/admin/users/${sub}` });
    expect(await h.runtime.behalf.webhooks.deliverDue()).toBe(1);
    const listing = await c.get('/admin/webhooks');
    expect(listing.html).not.toContain(secret!);
    expect(listing.html).not.toContain(secret!.slice(6, 22));
    expect(listing.html.match(/<td data-label="Event"><code>grant\.revoked<\/code><\/td>/g)).toHaveLength(1);
    expect(listing.html).toContain(`<a href="/admin/users/${sub}">${sub}</a>`);
    expect(listing.html).toContain('<span class="badge delivered">delivered</span>');
    expect(listing.html).toContain('HTTP 204');

    for (const endpoint of endpoints) {
      const removed = await c.post(
        `/admin/webhooks/${endpoint.id}/remove`,
        {},
        { fromPage: '/admin/webhooks' },
      );
      expect(removed).toMatchObject({ status: 303, location: '/admin/webhooks?done=removed' });
    }
    expect(await h.runtime.behalf.webhooks.listEndpoints()).toEqual([]);
    expect(
      (await c.post(`/admin/webhooks/${endpoints[0]!.id}/remove`, {}, { fromPage: '/admin/webhooks' }))
        .status,
    ).toBe(404);
  });
});
