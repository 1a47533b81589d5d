import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, screenshotPath, type TestBrowser } from '../support/browser.js';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

interface LocalMode {
  child: ChildProcess;
  dir: string;
  demo: string;
  server: string;
  emulator: string;
  apiKey: string;
}

/** The focused element's id (page code is written as strings: the tests compile without DOM types). */
const ACTIVE_ID = 'document.activeElement && document.activeElement.id';

/** `npm start` as a person runs it (`behalf serve --local`), in an empty folder, every port free. */
async function startLocalMode(): Promise<LocalMode> {
  const dir = await mkdtemp(join(tmpdir(), 'behalf-demo-'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('BEHALF_')));
  const child = spawn(process.execPath, ['--import', TSX, MAIN, 'serve', '--local'], {
    cwd: dir,
    env: {
      ...env,
      BEHALF_PORT: '0',
      BEHALF_EMULATOR_PORT: '0',
      BEHALF_DEMO_PORT: '0',
      BEHALF_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const banner = await new Promise<string>((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Press Ctrl+C to stop.')) resolve(output);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`behalf serve --local exited (${code}): ${output}`)));
  });
  const find = (pattern: RegExp) => {
    const match = pattern.exec(banner);
    if (match?.[1] === undefined) throw new Error(`not in the banner: ${pattern}\n${banner}`);
    return match[1];
  };
  return {
    child,
    dir,
    demo: find(/Open (http:\/\/\S+) in a browser/),
    server: find(/server\s+(http:\/\/\S+)/),
    emulator: find(/emulator\s+(http:\/\/\S+)/),
    apiKey: (await readFile(join(dir, '.behalf/api-key'), 'utf8')).trim(),
  };
}

async function stopLocalMode(local: LocalMode | undefined): Promise<void> {
  if (local === undefined) return;
  if (local.child.exitCode === null) {
    const exited = new Promise((resolve) => local.child.once('exit', resolve));
    local.child.kill('SIGTERM');
    await exited;
  }
  await rm(local.dir, { recursive: true, force: true });
}

/** Issue 13, point 3 (and points 1 and 2 in a real browser): the demo web app local mode serves. */
// A browser and a child process on a busy 2-core machine: generous limits, no timing assertions.
describe('local mode demo page, in Chromium', { timeout: 120_000 }, () => {
  let local: LocalMode | undefined;
  let browser: TestBrowser | undefined;
  beforeAll(async () => {
    [local, browser] = await Promise.all([startLocalMode(), launchBrowser()]);
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await stopLocalMode(local);
  });

  const l = () => local!;
  const control = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${l().emulator}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    if (!response.ok) throw new Error(`${method} ${path} → ${response.status}`);
    return (await response.json()) as T;
  };
  const stats = () =>
    control<{ codes_issued: number; token_requests: { authorization_code: number } }>(
      'GET',
      '/emulator/stats',
    );
  const service = (path: string) =>
    fetch(`${l().server}${path}`, { headers: { authorization: `Bearer ${l().apiKey}` } });
  const newPage = async (
    viewport = { width: 1024, height: 900 },
  ): Promise<{ context: BrowserContext; page: Page }> => {
    const context = await browser!.browser.newContext({ viewport });
    const page = await context.newPage();
    await page.goto(l().demo);
    await expect.poll(() => page.locator('#signin').isEnabled()).toBe(true);
    return { context, page };
  };
  const status = (page: Page, id: string) => page.locator(`#${id}`).textContent();

  it('signs in through the Google Identity Services popup and a cross-origin POST, keyboard only, and shows the profile and grant', async () => {
    const { context, page } = await newPage();
    try {
      await page.screenshot({ path: await screenshotPath('demo-1-before-sign-in'), fullPage: true });
      const posts: Array<
        Promise<{ url: string; headers: Record<string, string>; status: number; allowOrigin: string | null }>
      > = [];
      page.on('response', (response) => {
        const request = response.request();
        if (request.url().startsWith(l().server) && request.method() === 'POST') {
          posts.push(
            request.allHeaders().then((headers) => ({
              url: request.url(),
              headers,
              status: response.status(),
              allowOrigin: response.headers()['access-control-allow-origin'] ?? null,
            })),
          );
        }
      });

      // Tab to the button, Enter: the popup opens with the emulator's consent page.
      await page.keyboard.press('Tab');
      expect(await page.evaluate(ACTIVE_ID)).toBe('signin');
      const [popup] = await Promise.all([page.waitForEvent('popup'), page.keyboard.press('Enter')]);
      const popupClosed = popup.waitForEvent('close');
      await popup.waitForLoadState();
      expect(new URL(popup.url()).origin).toBe(l().emulator);
      expect(new URL(popup.url()).searchParams.get('redirect_uri')).toBe('postmessage');
      expect(new URL(popup.url()).searchParams.get('origin')).toBe(l().demo);
      await popup.screenshot({ path: await screenshotPath('demo-consent-popup') });
      await popup.keyboard.press('Tab');
      expect(await popup.evaluate('document.activeElement && document.activeElement.name')).toBe('new_email');
      await popup.keyboard.type('alice@example.com');
      await popup.keyboard.press('Enter');
      await popupClosed;

      await page.getByRole('heading', { name: 'Signed in' }).waitFor();
      expect(await page.evaluate(ACTIVE_ID)).toBe('profile-heading');
      expect(await status(page, 'email')).toBe('alice@example.com (verified)');
      expect(await status(page, 'grant-status')).toBe('active');
      expect(await status(page, 'answer')).toBe('201 Created: a new user');
      expect(await page.locator('#scopes li').allTextContents()).toEqual(
        expect.arrayContaining(['drive.appdata', 'userinfo.email', 'openid']),
      );
      expect(await status(page, 'signin-status')).toBe('Signed in as alice@example.com.');

      // One cross-origin POST to behalf, with X-Requested-With, granted by CORS for this origin.
      expect(await Promise.all(posts)).toEqual([
        {
          url: `${l().server}/v1/google/signin`,
          headers: expect.objectContaining({
            'x-requested-with': 'XMLHttpRequest',
            origin: l().demo,
            'content-type': 'application/json',
          }) as Record<string, string>,
          status: 201,
          allowOrigin: l().demo,
        },
      ]);
      // behalf holds the grant; the page shows no code or token.
      const sub = (await status(page, 'sub'))!;
      expect(await (await service(`/v1/users/${sub}`)).json()).toMatchObject({
        user: { email: 'alice@example.com' },
        grant: { status: 'active', offline_access: true },
      });
      const text = await page.locator('body').innerText();
      expect(text).not.toMatch(/4\/0A|ya29\.|1\/\/0/);
      await page.screenshot({ path: await screenshotPath('demo-2-signed-in'), fullPage: true });

      // Step 2, still by keyboard: Tab from the profile heading reaches the photo button.
      await page.keyboard.press('Tab');
      expect(await page.evaluate(ACTIVE_ID)).toBe('photo');
      await page.keyboard.press('Enter');
      // Polled from here: the page's Content-Security-Policy refuses waitForFunction's eval.
      const shown = `['before', 'after'].every((id) => {
        const img = document.getElementById(id);
        return !img.hidden && img.complete && img.naturalWidth > 0;
      })`;
      await expect.poll(() => page.evaluate(shown), { timeout: 60_000 }).toBe(true);
      expect(await status(page, 'photo-status')).toBe(
        'Done: the job enhanced your photo while you were away.',
      );
      await page.screenshot({ path: await screenshotPath('demo-3-after-photo-job'), fullPage: true });

      // Before and after are two real JPEGs of the same size, and not the same picture.
      const image = async (selector: string) => {
        const src = await page.locator(selector).getAttribute('src');
        const response = await fetch(new URL(src!, l().demo));
        expect(response.headers.get('cross-origin-resource-policy')).toBe('same-origin');
        return Buffer.from(await response.arrayBuffer());
      };
      const [before, after] = [await image('#before'), await image('#after')];
      expect(await sharp(before).metadata()).toMatchObject({ format: 'jpeg', width: 640, height: 420 });
      expect(await sharp(after).metadata()).toMatchObject({ format: 'jpeg', width: 640, height: 420 });
      expect(before.equals(after)).toBe(false);
      const contrast = async (bytes: Buffer) =>
        (await sharp(bytes).stats()).channels.map((c) => c.stdev).reduce((a, b) => a + b);
      expect(await contrast(after)).toBeGreaterThan(await contrast(before));

      // A phone: one column, nothing wider than the screen.
      await page.setViewportSize({ width: 390, height: 844 });
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      await page.screenshot({ path: await screenshotPath('demo-4-phone'), fullPage: true });
    } finally {
      await context.close();
    }
  });

  it('denying consent reaches the callback as an error, and nothing is signed in', async () => {
    const { context, page } = await newPage();
    try {
      const before = await stats();
      const [popup] = await Promise.all([page.waitForEvent('popup'), page.locator('#signin').click()]);
      await popup.getByLabel('or a new one').fill('dora@example.com');
      await popup.getByRole('button', { name: 'Deny' }).click();
      await expect
        .poll(() => status(page, 'signin-status'))
        .toBe('You did not allow access (access_denied): nothing was signed in.');
      expect(await page.locator('#profile').isHidden()).toBe(true);
      expect(await page.locator('#photo').isDisabled()).toBe(true);
      const after = await stats();
      expect(after.codes_issued).toBe(before.codes_issued);
      expect(after.token_requests.authorization_code).toBe(before.token_requests.authorization_code);
    } finally {
      await context.close();
    }
  });

  it('closing the popup reaches error_callback as popup_closed', async () => {
    const { context, page } = await newPage();
    try {
      const [popup] = await Promise.all([page.waitForEvent('popup'), page.locator('#signin').click()]);
      await popup.waitForLoadState();
      await popup.close();
      await expect
        .poll(() => status(page, 'signin-status'))
        .toBe('The Google window was closed before you chose: nothing was signed in.');
      expect(await page.locator('#profile').isHidden()).toBe(true);
    } finally {
      await context.close();
    }
  });

  it('a blocked popup reaches error_callback as popup_failed_to_open', async () => {
    const context = await browser!.browser.newContext();
    try {
      // What a popup blocker does: window.open answers null.
      await context.addInitScript('window.open = () => null;');
      const page = await context.newPage();
      await page.goto(l().demo);
      await expect.poll(() => page.locator('#signin').isEnabled()).toBe(true);
      await page.locator('#signin').click();
      await expect
        .poll(() => status(page, 'signin-status'))
        .toBe('The browser blocked the Google window: allow pop-ups for this page, then try again.');
    } finally {
      await context.close();
    }
  });

  it('the demo backend answers its own page only, and validates what it is sent', async () => {
    const post = (
      body: unknown,
      headers: Record<string, string> = { 'x-requested-with': 'XMLHttpRequest' },
    ) =>
      fetch(`${l().demo}/api/photo-job`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
    const expectError = async (response: Response, status: number, error: string) => {
      expect({ status: response.status, body: await response.json() }).toMatchObject({
        status,
        body: { error },
      });
    };
    await expectError(await post({ sub: '1' }, {}), 403, 'CSRF_HEADER_REQUIRED');
    await expectError(
      await post({ sub: '1' }, { 'x-requested-with': 'XMLHttpRequest', origin: 'http://127.0.0.1:1' }),
      403,
      'ORIGIN_NOT_ALLOWED',
    );
    await expectError(await post({ sub: 'not a sub' }), 400, 'INVALID_REQUEST');
    await expectError(await post({}), 400, 'INVALID_REQUEST');
    await expectError(await post({ sub: '999999999999999999999' }), 404, 'USER_NOT_FOUND');
    const run = (id: string) =>
      fetch(`${l().demo}/api/photo-job/${id}`, { headers: { 'x-requested-with': 'XMLHttpRequest' } });
    await expectError(await run('not-a-run'), 404, 'NOT_FOUND');
    await expectError(await run('00000000-0000-4000-8000-000000000000'), 404, 'NOT_FOUND');
    await expectError(await fetch(`${l().demo}/api/users/1/photos/..%2Fx`), 400, 'INVALID_REQUEST');
    // A name that resolves here but is not the demo's own (DNS rebinding) is refused.
    const port = new URL(l().demo).port;
    const rebound = await new Promise<number>((resolve, reject) => {
      const request = httpRequest(
        { host: '127.0.0.1', port, path: '/', headers: { host: `attacker.example:${port}` } },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.once('error', reject);
      request.end();
    });
    expect(rebound).toBe(400);
    // The page itself: a Content-Security-Policy that runs only its own script and the emulator's.
    const page = await fetch(l().demo);
    expect(page.headers.get('content-security-policy')).toContain(`script-src 'self' ${l().emulator};`);
    expect(page.headers.get('content-security-policy')).toContain(`connect-src 'self' ${l().server};`);
  });

  describe('a page on an origin that is not allowed', () => {
    let evil: Server;
    let evilOrigin: string;
    beforeAll(async () => {
      evil = createServer((_request, response) => {
        response.setHeader('content-type', 'text/html; charset=utf-8');
        response.end(
          `<!doctype html><title>elsewhere</title><script src="${l().emulator}/gsi/client"></script><button id="go">Sign in</button><p id="out"></p>`,
        );
      });
      await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
      evilOrigin = `http://127.0.0.1:${(evil.address() as { port: number }).port}`;
    });
    afterAll(async () => {
      await new Promise((resolve) => evil.close(resolve));
    });

    it('gets no CORS grant: the browser refuses its POST of a code, which stays unused', async () => {
      const context = await browser!.browser.newContext();
      try {
        const page = await context.newPage();
        await page.goto(evilOrigin);
        const clients = await control<{ server_client: { client_id: string } }>('GET', '/emulator/clients');
        const user = await control<{ sub: string }>('POST', '/emulator/users', {
          email: 'eve-victim@example.com',
        });
        const { code } = await control<{ code: string }>('POST', '/emulator/codes', {
          sub: user.sub,
          client_id: clients.server_client.client_id,
          scope: 'openid email',
          redirect_uri: 'postmessage',
        });
        const outcome = await page.evaluate(
          async ({ server, code }) => {
            try {
              const response = await fetch(`${server}/v1/google/signin`, {
                method: 'POST',
                headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'XMLHttpRequest' },
                body: JSON.stringify({ code, redirect_uri: 'postmessage' }),
              });
              return `answered ${response.status}`;
            } catch (error) {
              return `refused: ${(error as Error).name}`;
            }
          },
          { server: l().server, code },
        );
        // The preflight was refused (403 ORIGIN_NOT_ALLOWED, no grant: test/signin/cors.test.ts), so the
        // browser never sent the POST: the code is still unused and signs in from the demo's origin.
        expect(outcome).toBe('refused: TypeError');
        const signIn = await fetch(`${l().server}/v1/google/signin`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-requested-with': 'XMLHttpRequest',
            origin: l().demo,
          },
          body: JSON.stringify({ code, redirect_uri: 'postmessage' }),
        });
        expect(signIn.status).toBe(201);
      } finally {
        await context.close();
      }
    });

    it('cannot get a code from the Google Identity Services stand-in: origin_mismatch in the popup, nothing posted', async () => {
      const context = await browser!.browser.newContext();
      try {
        const page = await context.newPage();
        await page.goto(evilOrigin);
        const clients = await control<{ server_client: { client_id: string } }>('GET', '/emulator/clients');
        // The page's own sign-in code, as a web app writes it (a string: the tests compile without DOM types).
        await page.evaluate(`{
          const out = document.getElementById('out');
          const client = google.accounts.oauth2.initCodeClient({
            client_id: ${JSON.stringify(clients.server_client.client_id)},
            scope: 'openid email',
            ux_mode: 'popup',
            callback: (response) => (out.textContent = 'callback ' + JSON.stringify(response)),
            error_callback: (error) => (out.textContent = 'error_callback ' + error.type),
          });
          document.getElementById('go').addEventListener('click', () => client.requestCode());
        }`);
        const [popup] = await Promise.all([page.waitForEvent('popup'), page.locator('#go').click()]);
        await popup.waitForLoadState();
        expect(await popup.locator('body').innerText()).toContain('Error 400: origin_mismatch');
        await popup.close();
        await expect.poll(() => page.locator('#out').textContent()).toBe('error_callback popup_closed');
      } finally {
        await context.close();
      }
    });
  });
});
