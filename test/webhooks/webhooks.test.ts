/**
 * Issue 13, point 5: signed webhooks end to end, against the emulator, on the harness's backend
 * (SQLite, or Postgres with BEHALF_TEST_BACKEND=postgres). Every event comes from the real flow
 * that causes it; every delivery is verified with the `standardwebhooks` library; time moves on
 * the injected clock, never by waiting.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, type BehalfRuntime, type Dependencies } from '../../src/app.js';
import type { BehalfConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/logging.js';
import { MAX_ATTEMPTS, RETRY_JITTER, RETRY_SCHEDULE_MS, webhookStoreFor } from '../../src/webhooks/index.js';
import { startHarness, type Harness } from '../support/harness.js';
import { loopbackFetch, loopbackRequest } from '../support/no-network.js';
import { Receiver, verifyAt, type Received } from './receiver.js';

let h: Harness;
let receiver: Receiver;
const runtimes: BehalfRuntime[] = [];

beforeAll(async () => {
  h = await startHarness({ env: { BEHALF_WEBHOOK_ALLOW_PRIVATE: 'true' } });
});

afterAll(async () => {
  await h.close();
});

beforeEach(async () => {
  receiver = await Receiver.start();
});

afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.behalf.close();
  // Each test sees only its own endpoints' deliveries.
  for (const endpoint of await h.runtime.behalf.webhooks.listEndpoints())
    await h.runtime.behalf.webhooks.removeEndpoint(endpoint.id);
  await receiver.close();
});

/** Another behalf on the harness's database and clock (another instance, or the same after a restart). */
async function openRuntime(
  overrides: { allowPrivate?: boolean; config?: Partial<BehalfConfig>; deps?: Dependencies } = {},
): Promise<BehalfRuntime> {
  const config: BehalfConfig = {
    ...h.config,
    ...overrides.config,
    ...(overrides.allowPrivate === undefined ? {} : { webhooks: { allowPrivate: overrides.allowPrivate } }),
  };
  const runtime = await createRuntime(config, {
    clock: h.clock,
    logger: createLogger('silent'),
    fetch: loopbackFetch,
    request: loopbackRequest,
    ...overrides.deps,
  });
  runtimes.push(runtime);
  return runtime;
}

async function addEndpoint(
  body: Record<string, unknown> = { url: receiver.url },
): Promise<{ id: string; secret: string }> {
  const response = await h.service('POST', '/v1/webhooks', body);
  expect(response.status).toBe(201);
  return (await response.json()) as { id: string; secret: string };
}

async function closeRuntime(runtime: BehalfRuntime): Promise<void> {
  runtimes.splice(runtimes.indexOf(runtime), 1);
  await runtime.behalf.close();
}

const webhooks = () => h.runtime.behalf.webhooks;
const deliverDue = () => webhooks().deliverDue();
const json = (r: Received) =>
  JSON.parse(r.body) as { type: string; timestamp: string; data: Record<string, string> };

/** Move the clock past the longest (jittered) pause after failed attempt `attempt`. */
function pastRetry(attempt: number): void {
  h.clock.advance((RETRY_SCHEDULE_MS[attempt - 1]! * (1 + RETRY_JITTER)) / 1000 + 1);
}

describe('the service API', () => {
  it('POST answers 201 {id, url, events, secret} with the secret shown once; GET lists without secrets; DELETE answers 204, then 404', async () => {
    const first = await h.service('POST', '/v1/webhooks', { url: receiver.url });
    expect(first.status).toBe(201);
    expect(first.headers.get('cache-control')).toBe('no-store');
    const created = (await first.json()) as Record<string, unknown>;
    expect(Object.keys(created).sort()).toEqual(['events', 'id', 'secret', 'url']);
    expect(created).toMatchObject({ url: receiver.url, events: null });
    expect(created.id).toMatch(/^wh_[0-9a-f]{24}$/);
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const some = (await (
      await h.service('POST', '/v1/webhooks', {
        url: `${receiver.url}?b`,
        events: ['user.deleted', 'grant.revoked', 'user.deleted'],
      })
    ).json()) as Record<string, unknown>;
    expect(some.events).toEqual(['user.deleted', 'grant.revoked']);

    const listed = await h.service('GET', '/v1/webhooks');
    const text = await listed.text();
    expect(text).not.toContain(String(created.secret).slice(6));
    expect(text).not.toContain(String(some.secret).slice(6));
    const { webhooks: list } = JSON.parse(text) as { webhooks: Array<Record<string, unknown>> };
    expect(list).toHaveLength(2);
    expect(list[0]).toEqual({
      id: created.id,
      url: receiver.url,
      events: null,
      status: 'enabled',
      disabled_reason: null,
      created_at: new Date(Date.parse(String(list[0]!.created_at))).toISOString(),
      updated_at: list[0]!.created_at,
      deliveries: { pending: 0, delivered: 0, failed: 0 },
    });
    expect(Math.abs(Date.parse(String(list[0]!.created_at)) - h.clock.now())).toBeLessThan(60_000);

    expect((await h.service('DELETE', `/v1/webhooks/${String(created.id)}`)).status).toBe(204);
    const again = await h.service('DELETE', `/v1/webhooks/${String(created.id)}`);
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ error: 'WEBHOOK_NOT_FOUND' });
    expect((await h.service('DELETE', '/v1/webhooks/not-an-id')).status).toBe(404);
    expect(
      ((await (await h.service('GET', '/v1/webhooks')).json()) as { webhooks: unknown[] }).webhooks,
    ).toHaveLength(1);
  });

  it.each([
    [{}, 'bad_body'],
    [{ url: 'https://hooks.example.com/', extra: 1 }, 'bad_body'],
    [{ url: 42 }, 'bad_body'],
    [{ url: 'ftp://hooks.example.com/' }, 'bad_url'],
    [{ url: 'http://user:pw@127.0.0.1/' }, 'credentials_in_url'],
    [{ url: 'https://hooks.example.com/', events: [] }, 'bad_events'],
    [{ url: 'https://hooks.example.com/', events: ['grant.nope'] }, 'unknown_event_type'],
  ])('refuses %j with 400 INVALID_REQUEST (%s)', async (body, reason) => {
    const response = await h.service('POST', '/v1/webhooks', body);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: 'INVALID_REQUEST', reason });
    expect(await webhooks().listEndpoints()).toEqual([]);
  });

  it('needs a service API key', async () => {
    for (const [method, path] of [
      ['GET', '/v1/webhooks'],
      ['POST', '/v1/webhooks'],
      ['DELETE', '/v1/webhooks/wh_0123456789abcdef01234567'],
    ] as const) {
      const response = await fetch(`${h.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        ...(method === 'POST' ? { body: JSON.stringify({ url: receiver.url }) } : {}),
      });
      expect(response.status).toBe(401);
    }
    expect(await webhooks().listEndpoints()).toEqual([]);
  });
});

describe('events from the flows that cause them', () => {
  it('sign-out, sign-in again, a refused refresh, Google security events and deletions: each event once, signed, with the documented payload and no token', async () => {
    const { secret } = await addEndpoint();
    const nothing = await h.signedInUser(); // a first sign-in announces nothing: the app has the answer
    const alice = await h.signedInUser();
    const bob = await h.signedInUser();
    const carol = await h.signedInUser();

    // grant.revoked: the backend signs alice out.
    expect((await h.service('POST', `/v1/users/${alice}/sign-out`)).status).toBe(200);
    // grant.restored: alice signs in again with consent.
    expect((await h.signIn(await h.mintCode(alice, { prompt: 'consent' }))).status).toBe(200);
    // grant.needs_consent: bob removes the app's access at Google; behalf finds out on its next refresh.
    await h.control('POST', '/emulator/grants/revoke', { sub: bob });
    h.clock.advance(3600);
    expect((await h.service('POST', `/v1/users/${bob}/access-token`)).status).toBe(409);
    // A second refusal is no second change.
    expect((await h.service('POST', `/v1/users/${bob}/access-token`)).status).toBe(409);
    // Google's Cross-Account Protection: carol's tokens revoked, then her account purged.
    const push = (event: string, sub: string) =>
      h.control('POST', '/emulator/risc/events', { receiver_url: `${h.url}/v1/google/risc`, event, sub });
    await push('tokens-revoked', carol);
    await push('account-purged', carol);
    // user.deleted: the backend deletes alice.
    expect((await h.service('DELETE', `/v1/users/${alice}`)).status).toBe(200);

    expect(await deliverDue()).toBe(8);
    expect(receiver.received).toHaveLength(8);
    const events: Array<Record<string, string>> = receiver.received.map((request) => {
      const verified = verifyAt(h.clock, secret, request);
      expect(verified).toEqual(json(request));
      const { type, timestamp, data } = json(request);
      expect(Object.keys(json(request))).toEqual(['type', 'timestamp', 'data']);
      expect(new Date(timestamp).toISOString()).toBe(timestamp);
      return { type, ...data };
    });
    const expected: Array<Record<string, string>> = [
      { type: 'grant.revoked', sub: alice, previous_status: 'active', reason: 'signed_out' },
      { type: 'grant.restored', sub: alice, previous_status: 'revoked', reason: 'signed_in' },
      { type: 'grant.needs_consent', sub: bob, previous_status: 'active', reason: 'refresh_refused' },
      { type: 'grant.revoked', sub: carol, previous_status: 'active', reason: 'security_event' },
      { type: 'security_event.received', sub: carol, event: 'tokens-revoked', action: 'grant_dropped' },
      { type: 'user.deleted', sub: carol, reason: 'account_purged' },
      { type: 'security_event.received', sub: carol, event: 'account-purged', action: 'user_deleted' },
      { type: 'user.deleted', sub: alice, reason: 'deleted' },
    ];
    const order = (e: Record<string, string>) => JSON.stringify(Object.entries(e).sort());
    expect(events.map(order).sort()).toEqual(expected.map(order).sort());
    expect(events.some((e) => e.sub === nothing)).toBe(false);

    // Each under its own webhook-id, the delivery's id; every header as the specification has it.
    const ids = receiver.received.map((r) => r.headers['webhook-id']!);
    expect(new Set(ids).size).toBe(8);
    expect((await webhooks().listDeliveries()).map((d) => d.id).sort()).toEqual([...ids].sort());
    for (const request of receiver.received) {
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.headers['webhook-timestamp']).toMatch(/^\d{10}$/);
      expect(Math.abs(Number(request.headers['webhook-timestamp']) * 1000 - h.clock.now())).toBeLessThan(
        60_000,
      );
      expect(request.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    }
    // No token of any kind in any payload.
    const { tokens } = await h.control<{ tokens: Array<{ value: string }> }>('GET', '/emulator/tokens');
    for (const request of receiver.received)
      for (const token of tokens) expect(request.body).not.toContain(token.value);
    // All delivered, once each.
    expect(await deliverDue()).toBe(0);
    expect((await webhooks().listEndpoints())[0]!.deliveries).toEqual({
      pending: 0,
      delivered: 8,
      failed: 0,
    });
  });

  it('an endpoint gets only the event types it subscribed to', async () => {
    const deletions = await addEndpoint({ url: `${receiver.url}?deletions`, events: ['user.deleted'] });
    const sub = await h.signedInUser();
    await h.service('POST', `/v1/users/${sub}/sign-out`);
    await h.service('DELETE', `/v1/users/${sub}`);
    expect(await deliverDue()).toBe(1);
    expect(receiver.received.map(json)).toEqual([
      expect.objectContaining({ type: 'user.deleted', data: { sub, reason: 'deleted' } }),
    ]);
    verifyAt(h.clock, deletions.secret, receiver.received[0]!);
  });
});

describe('at least once, under one id', () => {
  it('a receiver down for most of a day gets everything once it is back, each event under the one webhook-id every attempt carried', async () => {
    const { secret } = await addEndpoint();
    const subs = [await h.signedInUser(), await h.signedInUser(), await h.signedInUser()];
    for (const sub of subs) await h.service('POST', `/v1/users/${sub}/sign-out`);

    // Down: connections dropped, then 503s, for the first five attempts.
    let up = false;
    receiver.behaviour = (_request, index) => (up ? 204 : index % 2 === 0 ? 'drop' : 503);
    expect(await deliverDue()).toBe(3);
    for (let attempt = 1; attempt < 5; attempt++) {
      // Not due before its pause, however the jitter fell.
      h.clock.advance((RETRY_SCHEDULE_MS[attempt - 1]! * (1 - RETRY_JITTER)) / 1000 - 1);
      expect(await deliverDue()).toBe(0);
      pastRetry(attempt);
      expect(await deliverDue()).toBe(3);
    }
    expect(receiver.received).toHaveLength(15);
    const pending = await webhooks().listDeliveries({ status: 'pending' });
    expect(pending).toHaveLength(3);
    for (const delivery of pending)
      expect(delivery).toMatchObject({
        attempts: 5,
        lastError: expect.stringMatching(/^(HTTP 503|connection failed \((UND_ERR_SOCKET|ECONNRESET)\))$/),
      });

    up = true;
    pastRetry(5);
    expect(await deliverDue()).toBe(3);
    expect(receiver.received).toHaveLength(18);

    const delivered = await webhooks().listDeliveries();
    expect(delivered.map((d) => [d.status, d.attempts, d.lastStatus, d.lastError])).toEqual(
      Array(3).fill(['delivered', 6, 204, null]),
    );
    for (const delivery of delivered) {
      const attempts = receiver.attemptsOf(delivery.id);
      expect(attempts).toHaveLength(6);
      // The same message every time: same id, same body; a new timestamp and signature per attempt.
      expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
      expect(new Set(attempts.map((a) => a.headers['webhook-timestamp'])).size).toBe(6);
      expect(verifyAt(h.clock, secret, attempts.at(-1)!)).toMatchObject({ type: 'grant.revoked' });
    }
    expect(delivered.map((d) => d.sub).sort()).toEqual([...subs].sort());
    expect(await deliverDue()).toBe(0);
  });

  it(`gives up after ${MAX_ATTEMPTS} attempts over about 27.6 hours, and says why`, async () => {
    await addEndpoint();
    const sub = await h.signedInUser();
    await h.service('POST', `/v1/users/${sub}/sign-out`);
    receiver.behaviour = () => 500;
    const started = h.clock.now();
    expect(await deliverDue()).toBe(1);
    for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
      pastRetry(attempt);
      expect(await deliverDue()).toBe(1);
    }
    const hours = (h.clock.now() - started) / 3_600_000;
    expect(hours).toBeGreaterThan(27.5 * (1 - RETRY_JITTER));
    expect(hours).toBeLessThan(27.6 * (1 + RETRY_JITTER) + 1);
    h.clock.advance(7 * 24 * 3600);
    expect(await deliverDue()).toBe(0);
    expect(receiver.received).toHaveLength(MAX_ATTEMPTS);
    expect(await webhooks().listDeliveries()).toEqual([
      expect.objectContaining({
        status: 'failed',
        attempts: MAX_ATTEMPTS,
        lastStatus: 500,
        lastError: 'HTTP 500',
        nextAttemptAt: null,
      }),
    ]);
  });

  it('410 Gone disables the endpoint: its pending deliveries fail and it gets no more events; others are unaffected', async () => {
    const gone = await addEndpoint({ url: `${receiver.url}?gone` });
    const fine = await addEndpoint({ url: `${receiver.url}?fine` });
    // The gone endpoint first fails once (its delivery then waits for a retry), then answers 410.
    let goneAnswers = 0;
    receiver.behaviour = (request) =>
      request.path.endsWith('?gone') ? (goneAnswers++ === 0 ? 503 : 410) : 204;
    const [a, b] = [await h.signedInUser(), await h.signedInUser()];
    await h.service('POST', `/v1/users/${a}/sign-out`);
    expect(await deliverDue()).toBe(2);
    await h.service('POST', `/v1/users/${b}/sign-out`);
    expect(await deliverDue()).toBe(2);
    expect(goneAnswers).toBe(2);

    const listed = (
      (await (await h.service('GET', '/v1/webhooks')).json()) as { webhooks: Array<Record<string, unknown>> }
    ).webhooks;
    expect(listed.find((e) => e.id === gone.id)).toMatchObject({
      status: 'disabled',
      disabled_reason: 'it answered 410 Gone',
      deliveries: { pending: 0, delivered: 0, failed: 2 },
    });
    expect(listed.find((e) => e.id === fine.id)).toMatchObject({
      status: 'enabled',
      deliveries: { pending: 0, delivered: 2, failed: 0 },
    });

    const goneDeliveries = await webhooks().listDeliveries({ endpointId: gone.id });
    expect(goneDeliveries.map((d) => [d.sub, d.attempts, d.lastStatus, d.lastError])).toEqual([
      [b, 1, 410, 'HTTP 410'],
      [a, 1, 503, 'not sent: the endpoint was disabled (it answered 410 Gone)'],
    ]);

    await h.service('DELETE', `/v1/users/${a}`);
    pastRetry(1);
    expect(await deliverDue()).toBe(1);
    expect(receiver.received.at(-1)!.path).toMatch(/\?fine$/);
    expect(goneAnswers).toBe(2);
  });

  it('a behalf restart mid-retry, and a sender that died mid-attempt: everything is delivered, under the same ids', async () => {
    const first = await openRuntime();
    const { secret } = await first.behalf.webhooks.addEndpoint({ url: receiver.url });
    const [a, b] = [await h.signedInUser(), await h.signedInUser()];
    await first.behalf.signOut(a);
    receiver.behaviour = () => 503;
    expect(await first.behalf.webhooks.deliverDue()).toBe(1);
    const retried = receiver.received[0]!.headers['webhook-id']!;
    // Stopped mid-retry.
    await closeRuntime(first);

    // Another sender claims b's delivery and dies before it records anything (its lease runs on).
    await h.service('POST', `/v1/users/${b}/sign-out`);
    const claimed = await webhookStoreFor(h.runtime.database).claimDue(
      h.clock.now(),
      h.clock.now() + 60_000,
      10,
    );
    expect(claimed).toHaveLength(1);
    const orphan = claimed[0]!;

    const second = await openRuntime();
    receiver.behaviour = () => 200;
    // Neither is due yet: a's retry waits out its pause, b's lease is still running.
    expect(await second.behalf.webhooks.deliverDue()).toBe(0);
    pastRetry(1);
    h.clock.advance(60);
    expect(await second.behalf.webhooks.deliverDue()).toBe(2);

    expect(receiver.attemptsOf(retried)).toHaveLength(2);
    expect(receiver.attemptsOf(orphan.id)).toHaveLength(1);
    expect(receiver.received).toHaveLength(3);
    const byId = new Map((await second.behalf.webhooks.listDeliveries()).map((d) => [d.id, d]));
    expect(byId.get(retried)).toMatchObject({ status: 'delivered', attempts: 2, sub: a });
    expect(byId.get(orphan.id)).toMatchObject({ status: 'delivered', attempts: 2, sub: b });
    for (const request of receiver.received.slice(1)) verifyAt(h.clock, secret, request);
  });

  it('the dispatcher a server starts delivers on its own', async () => {
    const runtime = await openRuntime({ deps: { webhooks: { delivery: { pollIntervalMs: 20 } } } });
    const { secret } = await runtime.behalf.webhooks.addEndpoint({ url: receiver.url });
    runtime.behalf.webhooks.start();
    const sub = await h.signedInUser();
    await h.service('POST', `/v1/users/${sub}/sign-out`);
    await receiver.waitFor(1);
    expect(verifyAt(h.clock, secret, receiver.received[0]!)).toMatchObject({
      type: 'grant.revoked',
      data: { sub },
    });
  });

  it('an attempt that gets no answer ends at the timeout and is retried', async () => {
    const runtime = await openRuntime({ deps: { webhooks: { delivery: { timeoutMs: 300 } } } });
    await runtime.behalf.webhooks.addEndpoint({ url: receiver.url });
    receiver.behaviour = () => 'hang';
    const sub = await h.signedInUser();
    await h.service('POST', `/v1/users/${sub}/sign-out`);
    expect(await runtime.behalf.webhooks.deliverDue()).toBe(1);
    expect(await runtime.behalf.webhooks.listDeliveries()).toEqual([
      expect.objectContaining({
        status: 'pending',
        attempts: 1,
        lastStatus: null,
        lastError: 'no answer within 300 ms',
      }),
    ]);
  });

  it('a redirect is not followed', async () => {
    await addEndpoint();
    receiver.behaviour = (_request, index) => (index === 0 ? 307 : 204);
    const sub = await h.signedInUser();
    await h.service('POST', `/v1/users/${sub}/sign-out`);
    expect(await deliverDue()).toBe(1);
    expect(receiver.received).toHaveLength(1);
    expect(await webhooks().listDeliveries()).toEqual([
      expect.objectContaining({
        status: 'pending',
        lastStatus: 307,
        lastError: 'HTTP 307: redirects are not followed',
      }),
    ]);
  });
});

describe('private networks (server-side request forgery)', () => {
  const PUBLIC = '93.184.215.14';

  it('without the opt-in, http and loopback or private hosts are refused when added, by the API and the library', async () => {
    const runtime = await openRuntime({
      allowPrivate: false,
      deps: {
        webhooks: {
          resolveHost: async (host) =>
            host === 'localhost' ? [{ address: '127.0.0.1', family: 4 }] : [{ address: PUBLIC, family: 4 }],
        },
      },
    });
    const refused = async (url: string) =>
      runtime.behalf.webhooks.addEndpoint({ url }).then(
        () => 'accepted',
        (e: { reason?: string }) => e.reason,
      );
    expect(await refused(receiver.url)).toBe('insecure_url');
    expect(await refused(`https://127.0.0.1:${receiver.port}/`)).toBe('private_address');
    expect(await refused('https://localhost/')).toBe('private_address');
    expect(await refused('https://10.1.2.3/')).toBe('private_address');
    expect(await refused('https://[fd00::1]/')).toBe('private_address');
    expect(await refused('https://hooks.example.com/')).toBe('accepted');
    expect(receiver.connections).toBe(0);
  });

  it('checked again at delivery, on the address connected to: a name that now resolves to loopback (DNS rebinding) gets no connection', async () => {
    let rebound = false;
    const runtime = await openRuntime({
      allowPrivate: false,
      deps: {
        webhooks: { resolveHost: async () => [{ address: rebound ? '127.0.0.1' : PUBLIC, family: 4 }] },
      },
    });
    await runtime.behalf.webhooks.addEndpoint({ url: `https://hooks.rebind.example:${receiver.port}/` });
    rebound = true;
    const sub = await h.signedInUser();
    await h.service('POST', `/v1/users/${sub}/sign-out`);
    expect(await runtime.behalf.webhooks.deliverDue()).toBe(1);
    expect(receiver.connections).toBe(0);
    expect(await runtime.behalf.webhooks.listDeliveries()).toEqual([
      expect.objectContaining({
        status: 'pending',
        attempts: 1,
        lastError: 'refused: the host resolves to a non-public address',
      }),
    ]);
  });

  it('an endpoint added while private networks were allowed is not sent to once they are not', async () => {
    await addEndpoint();
    const runtime = await openRuntime({ allowPrivate: false });
    const sub = await h.signedInUser();
    await h.service('POST', `/v1/users/${sub}/sign-out`);
    expect(await runtime.behalf.webhooks.deliverDue()).toBe(1);
    expect(receiver.connections).toBe(0);
    expect(await webhooks().listDeliveries()).toEqual([
      expect.objectContaining({ status: 'pending', lastError: 'not sent: insecure_url' }),
    ]);
  });
});

describe('key rotation', () => {
  it('rotateSecrets re-encrypts each signing secret under the new primary key; the old key can then go', async () => {
    const { secret } = await addEndpoint();
    const newKey = `k2:${Buffer.alloc(32, 7).toString('base64')}`;
    const rotating = await openRuntime({
      config: { encryptionKeys: `${newKey},${h.config.encryptionKeys!}` },
    });
    expect(await rotating.behalf.webhooks.rotateSecrets()).toEqual({
      endpoints: 1,
      reencrypted: 1,
      alreadyCurrent: 0,
    });
    expect(await rotating.behalf.webhooks.rotateSecrets()).toEqual({
      endpoints: 1,
      reencrypted: 0,
      alreadyCurrent: 1,
    });
    await closeRuntime(rotating);

    // Only the new key: the secret still signs, and it is the same secret.
    const rotated = await openRuntime({ config: { encryptionKeys: newKey } });
    const sub = await h.signedInUser();
    await h.service('POST', `/v1/users/${sub}/sign-out`);
    expect(await rotated.behalf.webhooks.deliverDue()).toBe(1);
    expect(verifyAt(h.clock, secret, receiver.received[0]!)).toMatchObject({
      type: 'grant.revoked',
      data: { sub },
    });
  });
});

describe('the secret stays secret', () => {
  it('it is in the creating answer only: not in listings, logs, nor the database in plaintext', async () => {
    const { secret } = await addEndpoint();
    const sub = await h.signedInUser();
    await h.service('POST', `/v1/users/${sub}/sign-out`);
    receiver.behaviour = (_request, index) => (index === 0 ? 500 : 204);
    await deliverDue();
    pastRetry(1);
    await deliverDue();
    expect(receiver.received).toHaveLength(2);

    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    const forms = [secret, secret.slice('whsec_'.length), key.toString('hex'), key.toString('base64url')];
    const listings = [
      await (await h.service('GET', '/v1/webhooks')).text(),
      JSON.stringify(await webhooks().listEndpoints()),
      JSON.stringify(await webhooks().listDeliveries()),
    ];
    for (const text of [...listings, h.logs.join('\n')])
      for (const form of forms) expect(text).not.toContain(form);
    for (const bytes of await h.databaseDump()) {
      for (const form of forms) expect(bytes.includes(Buffer.from(form))).toBe(false);
      expect(bytes.includes(key)).toBe(false);
    }
    // Nor does a request to the receiver carry it.
    for (const request of receiver.received)
      for (const form of forms) expect(JSON.stringify(request)).not.toContain(form);
  });
});
