import { google } from 'googleapis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { loopbackFetch } from '../support/no-network.js';
import { createUserFetch, GoogleHostAllowList } from '../../src/calls/index.js';
import { BehalfError } from '../../src/errors.js';

interface Stats {
  token_requests: { authorization_code: number; refresh_token: number };
  refreshes_by_sub: Record<string, number>;
  api_calls: number;
  faults_served: number;
}

/** Issue 4: calling Google APIs for users who are offline. */
describe('acting for offline users', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const signedIn = () => h.signedInUser();
  const stats = () => h.control<Stats>('GET', '/emulator/stats');
  const behalf = () => h.runtime.behalf;

  it('1,000 concurrent token requests for an expired user cause exactly one refresh', async () => {
    const sub = await signedIn();
    h.clock.advance(3600);
    const before = (await stats()).refreshes_by_sub[sub] ?? 0;
    const tokens = await Promise.all(Array.from({ length: 1000 }, () => behalf().getAccessToken(sub)));
    expect(new Set(tokens.map((t) => t.token)).size).toBe(1);
    expect((await stats()).refreshes_by_sub[sub]).toBe(before + 1);
  });

  it('a 401 from the API (token revoked mid-flight) is refreshed and retried once', async () => {
    const sub = await signedIn();
    const before = (await stats()).refreshes_by_sub[sub] ?? 0;
    await h.control('POST', '/emulator/faults', { path: '/drive/v3/files', status: 401, count: 1 });
    const response = await behalf().fetch(sub, `${h.emulator.url}/drive/v3/files?spaces=appDataFolder`);
    expect(response.status).toBe(200);
    expect((await stats()).refreshes_by_sub[sub]).toBe(before + 1);
  });

  it('a second 401 in a row is returned, not retried forever', async () => {
    const sub = await signedIn();
    await h.control('POST', '/emulator/faults', { path: '/drive/v3/files', status: 401, count: 2 });
    const response = await behalf().fetch(sub, `${h.emulator.url}/drive/v3/files?spaces=appDataFolder`);
    expect(response.status).toBe(401);
    await h.control('DELETE', '/emulator/faults');
  });

  /**
   * behalf's user fetch as the runtime wires it (same tokens, HTTP client, clock and host
   * allow-list), with the backoff's sleep injected and recorded and random() = 1: a retry is
   * seen as a recorded wait and one more call at Google, with no real waiting.
   */
  function fetchWithRecordedSleeps() {
    const sleeps: number[] = [];
    const fetch = createUserFetch({
      tokens: h.runtime.tokens,
      fetch: loopbackFetch,
      clock: h.clock,
      allowList: new GoogleHostAllowList(h.config.google.apiUrl),
      sleep: async (ms) => void sleeps.push(ms),
      random: () => 1,
    });
    return { fetch, sleeps };
  }
  const driveList = () => `${h.emulator.url}/drive/v3/files?spaces=appDataFolder`;
  /** Calls Google's Drive got: the ones a fault answered and the ones Drive served. */
  const driveCallsNow = async () => {
    const { api_calls: served, faults_served: faulted } = await stats();
    return { faulted, served };
  };

  it.each([
    ['429 with Retry-After: 1', { status: 429 }, 1_000],
    ['429 with Retry-After: 3', { status: 429, retry_after: 3 }, 3_000],
    ['503 with Retry-After: 2', { status: 503, retry_after: 2 }, 2_000],
  ])(
    '%s (injected sleep): waits as long as Google asks, then calls once more and succeeds',
    async (_what, fault, waitMs) => {
      const sub = await signedIn();
      const { fetch, sleeps } = fetchWithRecordedSleeps();
      await h.control('POST', '/emulator/faults', { path: '/drive/v3/files', count: 1, ...fault });
      const before = await driveCallsNow();
      const response = await fetch(sub, driveList());
      expect(response.status).toBe(200);
      expect(sleeps).toEqual([waitMs]);
      expect(await driveCallsNow()).toEqual({ faulted: before.faulted + 1, served: before.served + 1 });
    },
  );

  it.each([
    ['503 without Retry-After', { status: 503, retry_after: null }],
    ['500', { status: 500 }],
  ])(
    'a GET after a transient %s (injected sleep) is retried once after the backoff, and succeeds',
    async (_what, fault) => {
      const sub = await signedIn();
      const { fetch, sleeps } = fetchWithRecordedSleeps();
      await h.control('POST', '/emulator/faults', { path: '/drive/v3/files', count: 1, ...fault });
      const before = await driveCallsNow();
      const response = await fetch(sub, driveList());
      expect(response.status).toBe(200);
      // The first backoff: baseDelayMs (250) × random() (1).
      expect(sleeps).toEqual([250]);
      expect(await driveCallsNow()).toEqual({ faulted: before.faulted + 1, served: before.served + 1 });
    },
  );

  it.each([
    ['503 without Retry-After', { status: 503, retry_after: null }],
    ['500', { status: 500 }],
  ])(
    'a POST after a %s (injected sleep) is not retried: the answer goes back to the caller',
    async (_what, fault) => {
      const sub = await signedIn();
      const { fetch, sleeps } = fetchWithRecordedSleeps();
      await h.control('POST', '/emulator/faults', { path: '/drive/v3/files', count: 1, ...fault });
      const before = await driveCallsNow();
      const response = await fetch(sub, `${h.emulator.url}/drive/v3/files`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'once.txt', parents: ['appDataFolder'] }),
      });
      expect(response.status).toBe(fault.status);
      expect(response.headers.get('retry-after')).toBeNull();
      expect(sleeps).toEqual([]);
      expect(await driveCallsNow()).toEqual({ faulted: before.faulted + 1, served: before.served });
    },
  );

  it('a call its caller aborts ends with the abort at once, not with retries', async () => {
    const sub = await signedIn();
    await h.control('POST', '/emulator/faults', { path: '/drive/v3/files', latency_ms: 5000, rate: 1 });
    try {
      const url = `${h.emulator.url}/drive/v3/files?spaces=appDataFolder`;
      for (const call of [
        (signal: AbortSignal) => behalf().fetch(sub, url, { signal }),
        (signal: AbortSignal) => behalf().request(sub, url, { signal }),
      ]) {
        const error = await call(AbortSignal.timeout(100)).catch((e: unknown) => e);
        expect(error).not.toBeInstanceOf(BehalfError);
        expect((error as Error).name).toMatch(/AbortError|TimeoutError/);
      }
    } finally {
      await h.control('DELETE', '/emulator/faults');
    }
  });

  it('refuses to send a user token to a host that is not Google', async () => {
    const sub = await signedIn();
    await expect(behalf().fetch(sub, 'https://evil.example.com/steal')).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
    });
    await expect(behalf().fetch(sub, 'http://www.googleapis.com/drive/v3/files')).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
    });
    await expect(behalf().fetch(sub, 'https://www.googleapis.com.evil.example.com/x')).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
    });
  });

  it('the googleapis Drive client works through authFor', async () => {
    const sub = await signedIn();
    const rootUrl = `${h.emulator.url}/`;
    const drive = google.drive({ version: 'v3', auth: behalf().authFor(sub), rootUrl });
    // googleapis applies a global rootUrl to metadata URLs but not to media upload URLs: uploads
    // take it per call (see docs/emulator.md).
    const created = await drive.files.create(
      {
        requestBody: { name: 'notes.txt', parents: ['appDataFolder'], mimeType: 'text/plain' },
        media: { mimeType: 'text/plain', body: 'hello from the backend' },
        fields: 'id,name',
      },
      { rootUrl },
    );
    expect(created.data.name).toBe('notes.txt');
    const list = await drive.files.list({ spaces: 'appDataFolder', fields: 'files(id,name)' });
    expect(list.data.files?.map((f) => f.name)).toContain('notes.txt');
    const content = await drive.files.get(
      { fileId: created.data.id!, alt: 'media' },
      { responseType: 'text' },
    );
    expect(content.data).toBe('hello from the backend');

    // The token expires and is refreshed transparently.
    h.clock.advance(3700);
    await drive.files.delete({ fileId: created.data.id! });
    const after = await drive.files.list({ spaces: 'appDataFolder', fields: 'files(id,name)' });
    expect(after.data.files?.map((f) => f.name) ?? []).not.toContain('notes.txt');
  });

  it('a revoked grant surfaces as NEEDS_CONSENT from fetch', async () => {
    const sub = await signedIn();
    await h.control('POST', '/emulator/grants/revoke', { sub });
    await expect(
      behalf().fetch(sub, `${h.emulator.url}/drive/v3/files?spaces=appDataFolder`),
    ).rejects.toMatchObject({
      code: 'NEEDS_CONSENT',
    });
  });
});

describe('the proxy /v1/users/{sub}/google/...', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const signedIn = () => h.signedInUser();

  it('needs a service API key', async () => {
    const sub = await signedIn();
    expect((await fetch(`${h.url}/v1/users/${sub}/google/drive/v3/files?spaces=appDataFolder`)).status).toBe(
      401,
    );
  });

  it('forwards to the Google API with the user token, both ways', async () => {
    const sub = await signedIn();
    const boundary = 'behalf-test-boundary';
    const body = [
      `--${boundary}`,
      'Content-Type: application/json; charset=UTF-8',
      '',
      JSON.stringify({ name: 'upload.txt', parents: ['appDataFolder'] }),
      `--${boundary}`,
      'Content-Type: text/plain',
      '',
      'proxied upload',
      `--${boundary}--`,
      '',
    ].join('\r\n');
    const upload = await fetch(`${h.url}/v1/users/${sub}/google/upload/drive/v3/files?uploadType=multipart`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${h.apiKey}`,
        'content-type': `multipart/related; boundary=${boundary}`,
      },
      body,
    });
    expect(upload.status).toBe(200);
    const { id } = (await upload.json()) as { id: string };
    await fetch(`${h.url}/v1/users/${sub}/google/drive/v3/files/${id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'proxied.txt' }),
    });
    const list = await h.service(
      'GET',
      `/v1/users/${sub}/google/drive/v3/files?spaces=appDataFolder&fields=files(id,name)`,
    );
    expect(list.status).toBe(200);
    expect(((await list.json()) as { files: Array<{ name: string }> }).files.map((f) => f.name)).toContain(
      'proxied.txt',
    );
    const media = await h.service('GET', `/v1/users/${sub}/google/drive/v3/files/${id}?alt=media`);
    expect(await media.text()).toBe('proxied upload');
  });

  it('passes Google errors through with their status and body', async () => {
    const sub = await signedIn();
    const response = await h.service('GET', `/v1/users/${sub}/google/drive/v3/files/does-not-exist`);
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: 404 } });
  });

  it('applies the same rules as behalf.fetch: a 401 is refreshed and retried once, a 500 on a GET retried', async () => {
    const sub = await signedIn();
    const refreshes = async () =>
      (await h.control<{ refreshes_by_sub: Record<string, number> }>('GET', '/emulator/stats'))
        .refreshes_by_sub[sub] ?? 0;
    const before = await refreshes();
    await h.control('POST', '/emulator/faults', { path: '/drive/v3/files', status: 401, count: 1 });
    const afterRefusal = await h.service(
      'GET',
      `/v1/users/${sub}/google/drive/v3/files?spaces=appDataFolder`,
    );
    expect(afterRefusal.status).toBe(200);
    expect(await refreshes()).toBe(before + 1);
    await h.control('POST', '/emulator/faults', { path: '/drive/v3/files', status: 500, count: 1 });
    const afterError = await h.service('GET', `/v1/users/${sub}/google/drive/v3/files?spaces=appDataFolder`);
    expect(afterError.status).toBe(200);
    expect(await afterError.json()).toMatchObject({ files: expect.any(Array) });
  });

  it('sends a streamed upload once: a 401 on it goes back to the caller', async () => {
    const sub = await signedIn();
    await h.control('POST', '/emulator/faults', { path: '/upload/drive/v3/files', status: 401, count: 1 });
    const response = await fetch(`${h.url}/v1/users/${sub}/google/upload/drive/v3/files?uploadType=media`, {
      method: 'POST',
      headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'text/plain' },
      body: 'sent once',
    });
    expect(response.status).toBe(401);
    await h.control('DELETE', '/emulator/faults');
  });

  it('passes a 204 through without a body', async () => {
    const sub = await signedIn();
    const file = await h.control<{ id: string }>('POST', '/emulator/drive/files', {
      sub,
      name: 'gone.txt',
      size: 3,
    });
    const response = await h.service('DELETE', `/v1/users/${sub}/google/drive/v3/files/${file.id}`);
    expect(response.status).toBe(204);
    expect(await response.text()).toBe('');
    expect((await h.service('GET', `/v1/users/${sub}/google/drive/v3/files/${file.id}`)).status).toBe(404);
  });

  it('refuses a non-Google host (no open proxy)', async () => {
    const sub = await signedIn();
    for (const host of ['evil.example.com', '127.0.0.1:22', 'googleapis.com.evil.example.com']) {
      const response = await h.service('GET', `/v1/users/${sub}/google/${host}/anything`);
      expect(response.status).toBe(403);
      expect(await response.json()).toMatchObject({ error: 'HOST_NOT_ALLOWED' });
    }
  });
});
