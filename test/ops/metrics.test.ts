import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';

/** Issue 12, point 2: Prometheus metrics, per runtime, that move as sign-ins and refreshes happen. */

/** The value of one sample of the exposition, 0 when absent. Labels must match exactly. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const have = (match[2] ?? '')
      .split(/,(?=\w+=")/)
      .filter((s) => s !== '')
      .sort()
      .join(',');
    if (have === wanted) return Number(match[3]);
  }
  return 0;
}

async function scrape(h: Harness, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${h.url}/metrics`, { headers });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

describe('metrics', () => {
  let h: Harness;
  let other: Harness;
  beforeAll(async () => {
    [h, other] = await Promise.all([startHarness(), startHarness()]);
  });
  afterAll(async () => {
    await Promise.all([h?.close(), other?.close()]);
  });

  it('exposes behalf_* metrics and the process defaults, without a key', async () => {
    const text = await scrape(h);
    for (const name of [
      'behalf_http_requests_total',
      'behalf_http_request_duration_seconds',
      'behalf_refreshes_total',
      'behalf_google_request_duration_seconds',
      'behalf_grants',
      'behalf_access_token_cache_hits_total',
      'behalf_access_token_cache_misses_total',
      'behalf_security_events_total',
      'behalf_job_runs_total',
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toContain('behalf_refreshes_total{outcome="invalid_grant"} 0');
  });

  it('move as users sign in, tokens are handed out and refreshed, and Google refuses a grant', async () => {
    const before = await scrape(h);
    const sub = await h.signedInUser();
    const revoked = await h.signedInUser();

    expect((await h.service('POST', `/v1/users/${sub}/access-token`)).status).toBe(200); // from the store
    expect((await h.service('POST', `/v1/users/${sub}/access-token`)).status).toBe(200); // from memory
    await h.runtime.tokens.getAccessToken(sub, { forceRefresh: true });
    // A 503 is retried: one transient outcome, then ok.
    await h.control('POST', '/emulator/faults', { path: '/token', status: 503, retry_after: 0, count: 1 });
    await h.runtime.tokens.getAccessToken(sub, { forceRefresh: true });
    await h.control('POST', '/emulator/grants/revoke', { sub: revoked });
    expect(
      ((await (await h.service('GET', `/v1/users/${revoked}`)).json()) as { grant: { status: string } }).grant
        .status,
    ).toBe('active');
    await expect(h.runtime.tokens.getAccessToken(revoked, { forceRefresh: true })).rejects.toMatchObject({
      code: 'NEEDS_CONSENT',
    });

    h.clock.advance(5); // past the reuse of the last grant counts
    const after = await scrape(h);
    const delta = (name: string, labels: Record<string, string> = {}) =>
      sample(after, name, labels) - sample(before, name, labels);
    expect(
      delta('behalf_http_requests_total', { method: 'POST', route: '/v1/google/signin', status: '201' }),
    ).toBe(2);
    expect(
      delta('behalf_http_requests_total', {
        method: 'POST',
        route: '/v1/users/:sub/access-token',
        status: '200',
      }),
    ).toBe(2);
    expect(
      delta('behalf_http_requests_total', { method: 'GET', route: '/v1/users/:sub', status: '200' }),
    ).toBe(1);
    expect(
      delta('behalf_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/v1/google/signin',
        status: '201',
      }),
    ).toBe(2);
    expect(delta('behalf_refreshes_total', { outcome: 'ok' })).toBe(2);
    expect(delta('behalf_refreshes_total', { outcome: 'transient' })).toBe(1);
    expect(delta('behalf_refreshes_total', { outcome: 'invalid_grant' })).toBe(1);
    // Two code exchanges and four refresh attempts.
    expect(delta('behalf_google_request_duration_seconds_count', { endpoint: 'token' })).toBe(6);
    expect(delta('behalf_access_token_cache_hits_total')).toBe(1);
    expect(delta('behalf_access_token_cache_misses_total')).toBe(4);
    expect(sample(after, 'behalf_grants', { status: 'active' })).toBe(1);
    expect(sample(after, 'behalf_grants', { status: 'needs_consent' })).toBe(1);

    // Nothing about a user in the exposition: no sub, no email, no token, no key.
    const issued = await h.control<{ tokens: Array<{ value: string }> }>('GET', '/emulator/tokens');
    const users = await h.control<{ users: Array<{ sub: string; email: string }> }>('GET', '/emulator/users');
    for (const secret of [
      h.apiKey,
      ...issued.tokens.map((t) => t.value),
      ...users.users.flatMap((u) => [u.sub, u.email]),
    ]) {
      expect(after).not.toContain(secret);
    }
  });

  it('label a path by its route pattern, and an unknown path as (none)', async () => {
    await fetch(`${h.url}/v1/users/110169484474386276334/google/drive/v3/files`, {
      headers: { authorization: `Bearer ${h.apiKey}` },
    });
    await fetch(`${h.url}/no/such/path/110169484474386276334`);
    const text = await scrape(h);
    expect(
      sample(text, 'behalf_http_requests_total', {
        method: 'GET',
        route: '/v1/users/:sub/google/*',
        status: '404',
      }),
    ).toBe(1);
    expect(
      sample(text, 'behalf_http_requests_total', { method: 'GET', route: '(none)', status: '404' }),
    ).toBe(1);
    expect(text).not.toContain('110169484474386276334');
  });

  it('count security events by type, once per event id', async () => {
    const sub = await h.signedInUser();
    const push = (event: string, jti: string) =>
      h.control('POST', '/emulator/risc/events', {
        receiver_url: `${h.url}/v1/google/risc`,
        event,
        sub,
        jti,
      });
    await push('account-credential-change-required', 'jti-1');
    await push('account-credential-change-required', 'jti-1'); // a redelivery
    await push('verification', 'jti-2');
    const text = await scrape(h);
    expect(sample(text, 'behalf_security_events_total', { type: 'account-credential-change-required' })).toBe(
      1,
    );
    expect(sample(text, 'behalf_security_events_total', { type: 'verification' })).toBe(1);
  });

  it('count job run attempts by job and status', async () => {
    const sub = await h.signedInUser();
    const runner = h.runtime.behalf.createJobRunner({ pollIntervalMs: 20, backoff: { baseMs: 1, maxMs: 1 } });
    let attempts = 0;
    runner.define({
      name: 'flaky',
      maxAttempts: 3,
      run: async () => {
        if (++attempts === 1) throw Object.assign(new Error('Google said 503'), { status: 503 });
      },
    });
    runner.start();
    try {
      await runner.enqueue('flaky', sub);
      expect(await runner.whenIdle()).toBe(true);
    } finally {
      await runner.stop();
    }
    const text = await scrape(h);
    expect(sample(text, 'behalf_job_runs_total', { job: 'flaky', status: 'retrying' })).toBe(1);
    expect(sample(text, 'behalf_job_runs_total', { job: 'flaky', status: 'done' })).toBe(1);
  });

  it('belong to their runtime: another behalf in the same process counts its own', async () => {
    const text = await scrape(other);
    expect(
      sample(text, 'behalf_http_requests_total', {
        method: 'POST',
        route: '/v1/google/signin',
        status: '201',
      }),
    ).toBe(0);
    expect(sample(text, 'behalf_grants', { status: 'active' })).toBe(0);
    expect(
      sample(await scrape(h), 'behalf_http_requests_total', {
        method: 'POST',
        route: '/v1/google/signin',
        status: '201',
      }),
    ).toBeGreaterThan(0);
  });
});

describe('metrics behind BEHALF_METRICS_TOKEN', () => {
  const token = 'metrics-token-0123456789abcdef';
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { BEHALF_METRICS_TOKEN: token } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('answer only the right Bearer token, and never say it', async () => {
    const wrong: Array<Record<string, string>> = [
      {},
      { authorization: `Bearer ${token}x` },
      { authorization: token },
      { authorization: `Bearer ${h.apiKey}` },
    ];
    for (const headers of wrong) {
      const response = await fetch(`${h.url}/metrics`, { headers });
      expect(response.status).toBe(401);
      const body = await response.text();
      expect(JSON.parse(body)).toMatchObject({ error: 'UNAUTHENTICATED' });
      expect(body).not.toContain(token);
    }
    expect(await scrape(h, { authorization: `Bearer ${token}` })).toContain('behalf_grants');
    expect(h.logs.join('\n')).not.toContain(token);
    // The probes stay open.
    expect((await fetch(`${h.url}/readyz`)).status).toBe(200);
  });
});
