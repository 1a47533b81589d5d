import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * Issue 6: secrets never leave. A full flow at debug log level; then every log line, every HTTP
 * answer (headers and body), every error message and the database files are scanned for every
 * token, code, client secret and key: zero hits.
 */
describe('no secret leaves behalf', () => {
  let h: Harness;
  const seen: string[] = [];
  const errors: string[] = [];

  beforeAll(async () => {
    h = await startHarness({ env: { BEHALF_LOG_LEVEL: 'debug', BEHALF_GOOGLE_TIMEOUT_MS: '1000' } });
  });
  afterAll(async () => {
    await h.close();
  });

  /** Every answer behalf gives is recorded, except the access-token route's body (its purpose). */
  async function record(response: Response, { tokenRoute = false } = {}): Promise<Response> {
    const text = await response.clone().text();
    seen.push([...response.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n'));
    if (!tokenRoute) seen.push(text);
    return response;
  }

  it('drives sign-in, refresh, proxy, RISC, Google errors and deletion', async () => {
    const { sub, code } = await h.newUserWithCode();
    await record(await h.signIn(code));
    await record(await h.signIn(code)); // reused: Google's invalid_grant
    await record(await h.signIn(await h.mintCode(sub)));
    await record(await h.signIn('4/0Anot-a-real-code'));
    const form = await fetch(`${h.url}/v1/google/signin`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-requested-with': 'x' },
      body: new URLSearchParams({ code: (await h.newUserWithCode()).code }).toString(),
    });
    await record(form);

    await record(await h.service('POST', `/v1/users/${sub}/access-token`), { tokenRoute: true });
    h.clock.advance(3700);
    await record(await h.service('POST', `/v1/users/${sub}/access-token`), { tokenRoute: true });
    await record(await h.service('GET', `/v1/users/${sub}/google/drive/v3/files?spaces=appDataFolder`));
    await h.control('POST', '/emulator/faults', { path: '/drive/v3/files', status: 401, count: 1 });
    await record(await h.service('GET', `/v1/users/${sub}/google/drive/v3/files?spaces=appDataFolder`));
    await record(await h.service('GET', `/v1/users/${sub}`));

    // Google failing: 5xx on refresh, then a timeout, then a revoked grant.
    h.clock.advance(3700);
    await h.control('POST', '/emulator/faults', { path: '/token', status: 500, count: 50 });
    await record(await h.service('POST', `/v1/users/${sub}/access-token`));
    await h.control('DELETE', '/emulator/faults');
    await h.control('POST', '/emulator/grants/revoke', { sub });
    await record(await h.service('POST', `/v1/users/${sub}/access-token`));
    try {
      await h.runtime.behalf.getAccessToken(sub);
    } catch (error) {
      errors.push(String(error), JSON.stringify(error), (error as Error).stack ?? '');
    }

    const { id_token } = await h.control<{ id_token: string }>('POST', '/emulator/id-tokens', { sub });
    await record(await h.service('POST', '/v1/id-tokens/verify', { id_token }));
    await record(await h.service('POST', '/v1/id-tokens/verify', { id_token: `${id_token}x` }));
    try {
      await h.runtime.behalf.verifyIdToken(`${id_token.slice(0, -4)}AAAA`);
    } catch (error) {
      errors.push(String(error), JSON.stringify(error));
    }
    await h.control('POST', '/emulator/risc/events', { receiver_url: `${h.url}/v1/google/risc`, event: 'sessions-revoked', sub });
    const other = await h.newUserWithCode();
    await record(await h.signIn(other.code));
    await record(await h.service('DELETE', `/v1/users/${other.sub}`));
  });

  it('finds no token, code, secret or key in logs, answers, errors or the database', async () => {
    const issued = await h.control<{ tokens: Array<{ value: string }> }>('GET', '/emulator/tokens');
    const secrets = [
      ...issued.tokens.map((t) => t.value),
      h.emulator.clients.server.clientSecret,
      h.apiKey,
      h.config.encryptionKeys!.split(':')[1]!,
    ];
    expect(secrets.length).toBeGreaterThan(10);
    const database = await h.databaseDump();
    const haystacks: Array<[string, string | Buffer]> = [
      ...h.logs.map((line, i): [string, string] => [`log line ${i}`, line]),
      ...seen.map((text, i): [string, string] => [`answer ${i}`, text]),
      ...errors.map((text, i): [string, string] => [`error ${i}`, text]),
      ...database.map((bytes, i): [string, Buffer] => [`database part ${i}`, bytes]),
    ];
    expect(h.logs.length).toBeGreaterThan(20);
    const hits: string[] = [];
    for (const [where, haystack] of haystacks) {
      for (const secret of secrets) {
        // A fragment of 24 characters is enough to count as a leak.
        const needle = secret.length > 24 ? secret.slice(0, 24) : secret;
        if (typeof haystack === 'string' ? haystack.includes(needle) : haystack.includes(Buffer.from(needle))) hits.push(`${where}: ${needle.slice(0, 6)}…`);
      }
    }
    expect(hits).toEqual([]);
  });
});
