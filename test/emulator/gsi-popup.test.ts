import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator } from '../../src/emulator/index.js';
import { DRIVE_APPDATA, startFixture, type EmulatorFixture } from './support.js';

const WEB_ORIGIN = 'http://127.0.0.1:5173';

/**
 * Issue 13, point 2, without a browser: what the Google Identity Services stand-in's popup asks of
 * the emulator (the browser tests in test/demo/ drive the script itself).
 */
describe('emulator: the web popup code flow (redirect_uri=postmessage)', () => {
  let f: EmulatorFixture;
  let sub: string;
  beforeAll(async () => {
    f = await startFixture();
    sub = (await f.user('web-user@example.com')).sub;
  });
  afterAll(async () => {
    await f.close();
  });

  /** What the script's requestCode() sends (access_type=offline and include_granted_scopes=true: issue 15). */
  const params = (extra: Record<string, string> = {}) => ({
    client_id: f.emulator.clients.server.clientId,
    scope: `openid email ${DRIVE_APPDATA}`,
    redirect_uri: 'postmessage',
    response_type: 'code',
    origin: 'http://localhost:3000',
    include_granted_scopes: 'true',
    access_type: 'offline',
    state: 'st-1',
    ...extra,
  });
  const authorize = (p: Record<string, string>) =>
    fetch(`${f.emulator.url}/o/oauth2/v2/auth?${new URLSearchParams(p).toString()}`);
  const decide = async (p: Record<string, string>) => {
    const response = await fetch(`${f.emulator.url}/o/oauth2/v2/auth/decision`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(p).toString(),
    });
    return { status: response.status, html: await response.text() };
  };
  /** The message the result page posts, and the origin it targets. */
  const posted = (html: string): { message: Record<string, string>; target: string } => {
    const match = /window\.opener\.postMessage\((\{.*?\}), ("[^"]*")\)/.exec(html);
    if (match === null) throw new Error(`no postMessage in ${html}`);
    return {
      message: JSON.parse(match[1]!) as Record<string, string>,
      target: JSON.parse(match[2]!) as string,
    };
  };
  const codesIssued = async () =>
    (await f.control<{ codes_issued: number }>('GET', '/emulator/stats')).codes_issued;

  it('serves the script at /gsi/client as JavaScript', async () => {
    const response = await fetch(`${f.emulator.url}/gsi/client`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const script = await response.text();
    expect(script).toContain('initCodeClient');
    expect(script).toContain(JSON.stringify(f.emulator.url));
  });

  it('shows the consent page to a registered JavaScript origin, carrying the origin to the decision', async () => {
    const response = await authorize(params());
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain('<input type="hidden" name="origin" value="http://localhost:3000">');
    expect(html).toContain('web-user@example.com');
  });

  it('refuses a popup from an origin that is not registered, or that names none: origin_mismatch, and no code', async () => {
    const before = await codesIssued();
    for (const origin of [
      undefined,
      'https://evil.example.com',
      'http://localhost:3000/',
      'http://localhost:3001',
      'null',
    ]) {
      const p = params(origin === undefined ? {} : { origin });
      if (origin === undefined) delete (p as Record<string, string>).origin;
      const page = await authorize(p);
      expect(page.status).toBe(400);
      expect(await page.text()).toContain('origin_mismatch');
      const decision = await decide({ ...p, decision: 'allow', sub });
      expect(decision.status).toBe(400);
      expect(decision.html).toContain('origin_mismatch');
      expect(decision.html).not.toContain('postMessage');
    }
    expect(await codesIssued()).toBe(before);
  });

  it('Allow posts {code, scope, state, authuser, prompt} to the opener at that origin only; the code redeems with postmessage only', async () => {
    const { status, html } = await decide({ ...params(), decision: 'allow', sub });
    expect(status).toBe(200);
    const { message, target } = posted(html);
    expect(target).toBe('http://localhost:3000');
    expect(message).toEqual({
      state: 'st-1',
      code: expect.stringMatching(/^4\/0A/),
      scope: `https://www.googleapis.com/auth/userinfo.email ${DRIVE_APPDATA} openid`,
      authuser: '0',
      prompt: 'consent',
    });
    // The page does not close itself: the opener closes it once it has the answer, so a closed
    // popup without an answer always means the user closed it.
    expect(html).not.toContain('window.close');
    expect(await f.exchange(message.code!)).toMatchObject({
      status: 400,
      body: { error: 'redirect_uri_mismatch' },
    });
    expect(
      await f.exchange(message.code!, { redirect_uri: 'http://localhost:3000/oauth2callback' }),
    ).toMatchObject({
      status: 400,
      body: { error: 'redirect_uri_mismatch' },
    });
    const redeemed = await f.exchange(message.code!, { redirect_uri: 'postmessage' });
    expect(redeemed.status).toBe(200);
    expect(redeemed.body).toMatchObject({
      refresh_token: expect.stringMatching(/^1\/\/0/),
      id_token: expect.any(String),
    });
  });

  it('Deny posts {error: access_denied, state} and issues no code', async () => {
    const before = await codesIssued();
    const { status, html } = await decide({ ...params({ state: 'st-2' }), decision: 'deny', sub });
    expect(status).toBe(200);
    expect(posted(html)).toEqual({
      message: { error: 'access_denied', state: 'st-2' },
      target: 'http://localhost:3000',
    });
    expect(await codesIssued()).toBe(before);
  });

  it('a state or origin with markup cannot break out of the result page script', async () => {
    const { html } = await decide({
      ...params({ state: '</script><script>alert(1)</script>' }),
      decision: 'deny',
      sub,
    });
    expect(html).not.toContain('</script><script>alert(1)');
    expect(posted(html).message.state).toBe('</script><script>alert(1)</script>');
  });

  it('include_granted_scopes=false: the code covers the requested scopes only', async () => {
    const user = await f.user();
    await decide({ ...params(), decision: 'allow', sub: user.sub });
    const { html } = await decide({
      ...params({ scope: 'openid', include_granted_scopes: 'false' }),
      decision: 'allow',
      sub: user.sub,
    });
    expect(posted(html).message.scope).toBe('openid');
    const { html: all } = await decide({ ...params({ scope: 'openid' }), decision: 'allow', sub: user.sub });
    expect(posted(all).message.scope).toBe(
      `https://www.googleapis.com/auth/userinfo.email ${DRIVE_APPDATA} openid`,
    );
  });

  it('a new account typed on the consent page is the one signed in', async () => {
    const { html } = await decide({ ...params(), decision: 'allow', sub, new_email: 'typed@example.com' });
    const users = await f.control<{ users: Array<{ sub: string; email: string }> }>('GET', '/emulator/users');
    const typed = users.users.find((u) => u.email === 'typed@example.com')!;
    const redeemed = await f.exchange(posted(html).message.code!, { redirect_uri: 'postmessage' });
    expect(
      JSON.parse(Buffer.from((redeemed.body.id_token as string).split('.')[1]!, 'base64url').toString()).sub,
    ).toBe(typed.sub);
    expect((await decide({ ...params(), decision: 'allow', new_email: 'not an email' })).status).toBe(400);
  });

  it('more JavaScript origins can be registered at start; anything that is not an origin is refused', async () => {
    const emulator = await startEmulator({ javascriptOrigins: [`${WEB_ORIGIN}/`, 'http://LOCALHOST:5173'] });
    try {
      expect(emulator.clients.server.javascriptOrigins).toEqual([
        'http://localhost:3000',
        'http://localhost:8080',
        WEB_ORIGIN,
        'http://localhost:5173',
      ]);
      expect(
        (emulator.clientSecretJson() as { web: { javascript_origins: string[] } }).web.javascript_origins,
      ).toContain(WEB_ORIGIN);
      const p = { ...params(), client_id: emulator.clients.server.clientId, origin: WEB_ORIGIN };
      expect(
        (await fetch(`${emulator.url}/o/oauth2/v2/auth?${new URLSearchParams(p).toString()}`)).status,
      ).toBe(200);
    } finally {
      await emulator.close();
    }
    for (const bad of ['http://localhost:5173/app', 'ftp://localhost', 'localhost:5173']) {
      await expect(startEmulator({ javascriptOrigins: [bad] })).rejects.toThrow(/not a JavaScript origin/);
    }
  });
});
