/**
 * The admin console in a real Chromium (Debian's, through playwright-core; issue 13): sign-in,
 * user search, a sign-out from the user page, a wrong or expired session sent back to sign-in,
 * the main flow by keyboard alone, every control named, and screenshots of every page at desktop
 * and phone widths (test-output/screenshots/admin-*.png, not committed).
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, screenshotPath, type TestBrowser } from '../support/browser.js';
import { startHarness, type Harness } from '../support/harness.js';

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

// A real browser on a shared 2-core machine: generous limits (they bound a hang, they time nothing).
describe('admin console in Chromium', { timeout: 180_000 }, () => {
  let h: Harness;
  let chromium: TestBrowser;
  let browser: Browser;
  const users: Array<{ sub: string; email: string }> = [];

  beforeAll(async () => {
    [h, chromium] = await Promise.all([
      startHarness({ env: { BEHALF_WEBHOOK_ALLOW_PRIVATE: 'true' } }),
      launchBrowser(),
    ]);
    browser = chromium.browser;
    // An endpoint nobody listens on (this harness sends nothing): its deliveries stay pending, for the webhooks page.
    await h.runtime.behalf.webhooks.addEndpoint({
      url: 'http://127.0.0.1:9/behalf-events',
      events: ['grant.revoked', 'grant.needs_consent'],
    });
    for (const name of ['ada.lovelace', 'alan.turing', 'grace.hopper', 'katherine.johnson']) {
      const email = `${name}@example.com`;
      const { sub, code } = await h.newUserWithCode({ email });
      expect((await h.signIn(code)).status).toBe(201);
      users.push({ sub, email });
    }
    // One user Google no longer accepts, found by a check.
    await h.control('POST', '/emulator/grants/revoke', { sub: users[3]!.sub });
    await h.runtime.tokens.getAccessToken(users[3]!.sub, { forceRefresh: true }).catch(() => undefined);
  });

  afterAll(async () => {
    await chromium?.close();
    await h?.close();
  });

  async function newPage(viewport = DESKTOP): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({
      viewport,
      ...(viewport === PHONE ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
    });
    return { context, page: await context.newPage() };
  }

  async function signInThroughForm(page: Page): Promise<void> {
    await page.goto(`${h.url}/admin/sign-in`);
    await page.getByLabel('Service API key').fill(h.apiKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${h.url}/admin/users`);
  }

  /** Every input, select and button on the page has an accessible name (a label, aria-label, or its text). */
  async function expectEveryControlNamed(page: Page): Promise<void> {
    const unnamed =
      await page.evaluate(`[...document.querySelectorAll('input:not([type=hidden]), select, button, textarea, a')]
      .filter((el) => !((el.labels && el.labels.length > 0) || el.getAttribute('aria-label') || el.textContent.trim()))
      .map((el) => el.outerHTML)`);
    expect(unnamed).toEqual([]);
  }

  it('signs in through the form, keeps no key in the browser, and finds a user by email', async () => {
    const { context, page } = await newPage();
    try {
      await signInThroughForm(page);
      await expect(page.getByRole('heading', { name: 'Users' }).isVisible()).resolves.toBe(true);
      // The key is nowhere the page or a script could read it back.
      const cookies = await context.cookies();
      expect(cookies).toHaveLength(1);
      expect(cookies[0]).toMatchObject({
        name: 'behalf_admin',
        httpOnly: true,
        sameSite: 'Strict',
        path: '/admin',
      });
      expect(JSON.stringify(cookies)).not.toContain(h.apiKey.slice(17));
      expect(await page.evaluate('document.cookie')).toBe('');
      expect(await page.evaluate('JSON.stringify(localStorage) + JSON.stringify(sessionStorage)')).toBe(
        '{}{}',
      );
      expect(await page.content()).not.toContain(h.apiKey.slice(17));

      await page.getByLabel('Email starts with').fill('GRACE');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.waitForURL(/\/admin\/users\?q=GRACE&status=$/);
      const rows = page.locator('tbody tr');
      expect(await rows.count()).toBe(1);
      expect(await rows.first().innerText()).toContain('grace.hopper@example.com');

      await page.getByLabel('Grant status').selectOption('needs_consent');
      await page.getByLabel('Email starts with').fill('');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.waitForURL(/status=needs_consent/);
      expect(await page.locator('tbody tr').allInnerTexts()).toEqual([
        expect.stringContaining('katherine.johnson@example.com'),
      ]);
    } finally {
      await context.close();
    }
  });

  it('signs a user out from their page: the grant is revoked at Google and shown so', async () => {
    const { context, page } = await newPage();
    try {
      await signInThroughForm(page);
      const alan = users[1]!;
      await page.getByRole('link', { name: alan.email }).click();
      await page.waitForURL(`${h.url}/admin/users/${alan.sub}`);
      await expect(page.getByRole('heading', { name: alan.email, level: 1 }).isVisible()).resolves.toBe(true);
      await page.getByRole('button', { name: 'Sign out (revoke grant)' }).click();
      await page.waitForURL(`${h.url}/admin/users/${alan.sub}?done=signed-out`);
      expect(await page.getByRole('status').innerText()).toContain(
        'Signed out: the grant was revoked at Google',
      );
      expect(await page.locator('.badge.revoked').first().innerText()).toBe('revoked');
      expect((await h.runtime.store.getGrant(alan.sub, h.runtime.behalf.clientId))?.status).toBe('revoked');
      await expect(page.getByRole('button', { name: 'Sign out (revoke grant)' }).count()).resolves.toBe(0);
    } finally {
      await context.close();
    }
  });

  it('a wrong session cookie and an expired session are sent back to sign-in with a clear message', async () => {
    const { context, page } = await newPage();
    try {
      await context.addCookies([{ name: 'behalf_admin', value: 'A'.repeat(43), url: `${h.url}/admin` }]);
      await page.goto(`${h.url}/admin/users`);
      await page.waitForURL(/\/admin\/sign-in\?reason=invalid/);
      expect(await page.getByRole('alert').innerText()).toContain('Your session has ended');

      await page.getByLabel('Service API key').fill('bhf_not_a_key');
      await page.getByRole('button', { name: 'Sign in' }).click();
      expect(await page.getByRole('alert').innerText()).toContain('That is not a valid service API key');
      expect(page.url()).toBe(`${h.url}/admin/sign-in`);

      await signInThroughForm(page);
      await page.getByRole('link', { name: users[0]!.email }).click();
      await page.waitForURL(`${h.url}/admin/users/${users[0]!.sub}`);
      h.clock.advance(16 * 60);
      await page.reload();
      await page.waitForURL(/\/admin\/sign-in\?reason=expired/);
      expect(await page.getByRole('alert').innerText()).toContain('Your session expired');
      // Signing in again returns to the page that was asked for.
      await page.getByLabel('Service API key').fill(h.apiKey);
      await page.keyboard.press('Enter');
      await page.waitForURL(`${h.url}/admin/users/${users[0]!.sub}`);
    } finally {
      await context.close();
    }
  });

  it('the main flow works by keyboard alone: sign in, search, open a user, sign them out', async () => {
    const { context, page } = await newPage();
    const focused = () =>
      page.evaluate(
        `(() => { const el = document.activeElement; return el ? (el.id || el.textContent.trim() || el.tagName) : '' })()`,
      );
    /** Press Tab until the focus is on what `wanted` names (its id or text), at most 40 times. */
    async function tabTo(wanted: string): Promise<void> {
      for (let i = 0; i < 40; i++) {
        await page.keyboard.press('Tab');
        if ((await focused()) === wanted) return;
      }
      throw new Error(`Tab never reached ${wanted}`);
    }
    try {
      await page.goto(`${h.url}/admin/sign-in`);
      // The key field has the focus on arrival.
      expect(await focused()).toBe('key');
      await page.keyboard.type(h.apiKey);
      await page.keyboard.press('Enter');
      await page.waitForURL(`${h.url}/admin/users`);

      // The skip link comes first and lands on the content.
      await page.keyboard.press('Tab');
      expect(await focused()).toBe('Skip to content');
      await page.keyboard.press('Enter');
      await tabTo('q');
      await page.keyboard.type('ada');
      await page.keyboard.press('Enter');
      await page.waitForURL(/q=ada&status=$/);

      const ada = users[0]!;
      await tabTo(ada.email);
      await page.keyboard.press('Enter');
      await page.waitForURL(`${h.url}/admin/users/${ada.sub}`);
      await tabTo('Sign out (revoke grant)');
      await page.keyboard.press('Enter');
      await page.waitForURL(`${h.url}/admin/users/${ada.sub}?done=signed-out`);
      expect((await h.runtime.store.getGrant(ada.sub, h.runtime.behalf.clientId))?.status).toBe('revoked');

      // The focused control is visibly outlined.
      await tabTo('Check now');
      const outline = await page.evaluate(`getComputedStyle(document.activeElement).outlineStyle`);
      expect(outline).toBe('solid');
    } finally {
      await context.close();
    }
  });

  it('every page, at desktop and phone widths: screenshots, every control named, nothing wider than the screen', async () => {
    const grace = users[2]!;
    const katherine = users[3]!;
    await h.control('POST', '/emulator/risc/events', {
      receiver_url: `${h.url}/v1/google/risc`,
      event: 'account-credential-change-required',
      sub: grace.sub,
    });
    await h.runtime.tokens.getAccessToken(grace.sub, { forceRefresh: true });
    for (const [label, viewport] of [
      ['desktop', DESKTOP],
      ['phone', PHONE],
    ] as const) {
      const { context, page } = await newPage(viewport);
      try {
        await page.goto(`${h.url}/admin/sign-in`);
        await expectEveryControlNamed(page);
        await page.screenshot({ path: await screenshotPath(`admin-sign-in-${label}`), fullPage: true });
        await signInThroughForm(page);
        const shots: Array<[string, string]> = [
          ['users', '/admin/users'],
          ['users-filtered', '/admin/users?status=needs_consent'],
          ['user', `/admin/users/${grace.sub}`],
          ['user-needs-consent', `/admin/users/${katherine.sub}?check=NEEDS_CONSENT`],
          ['user-delete', `/admin/users/${grace.sub}/delete`],
          ['api-keys', '/admin/api-keys'],
          ['webhooks', '/admin/webhooks'],
        ];
        if (label === 'desktop') {
          await page.goto(`${h.url}/admin/sweep`);
          await page.getByRole('button', { name: 'Start a sweep' }).click();
          await page.waitForURL(/done=started/);
        }
        await expect
          .poll(
            async () =>
              (await (await page.request.get(`${h.url}/admin/sweep`)).text()).includes(
                'Latest sweep <span class="badge done">',
              ),
            { timeout: 60_000 },
          )
          .toBe(true);
        shots.push(['sweep', '/admin/sweep']);
        for (const [name, path] of shots) {
          await page.goto(`${h.url}${path}`);
          await expectEveryControlNamed(page);
          // Readable on a phone: the page itself never scrolls sideways (wide tables scroll in their own box).
          const overflow = await page.evaluate(
            'document.documentElement.scrollWidth - document.documentElement.clientWidth',
          );
          expect(overflow, `${name} at ${label} width`).toBeLessThanOrEqual(0);
          await page.screenshot({ path: await screenshotPath(`admin-${name}-${label}`), fullPage: true });
        }
      } finally {
        await context.close();
      }
    }
  });
});
