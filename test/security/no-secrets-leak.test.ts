import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../src/clock.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { isBehalfError } from '../../src/index.js';
import { startServeProcess, type ServeProcess } from '../support/behalf-processes.js';
import { dumpDatabase } from '../support/database-dump.js';
import { waitUntil } from '../support/deadline.js';
import { startGoogleWorld, type GoogleWorld } from '../support/google-world.js';
import { SIGNIN_SCOPES, startHarness, TEST_BACKEND, type Harness } from '../support/harness.js';
import { requirePostgres } from '../support/postgres.js';
import { createSharedPostgres, createSharedSqlite, type SharedDatabase } from '../support/shared-database.js';
import { Receiver, verifyAt } from '../webhooks/receiver.js';

/**
 * Issue 6, made strict by issue 16 (point 3): secrets never leave behalf. A full flow, every step
 * checked for its status, runs against behalf with the production logger at `trace`: in process
 * (createRuntime and createServer, as `behalf serve` wires them, logs captured from
 * createLogger), and as a `behalf serve` process (its stdout and stderr captured whole). Then
 * every answer (headers and body), the database (SQLite's files, or every Postgres row with
 * BEHALF_TEST_BACKEND=postgres), every log line and the process's output are scanned for every
 * token, code and client secret the emulator issued, the service API key, the encryption key and
 * the webhook signing secret: not only whole, but any 16-character slice of each, raw or
 * base64/base64url encoded, since a truncated or encoded token in a log line is still a leak. The
 * webhook deliveries the flow causes (headers and bodies, as the receiver got them) are scanned
 * too. The receiver listens on loopback, so both variants run with BEHALF_WEBHOOK_ALLOW_PRIVATE=true
 * (the URL policy is not what this file tests: see test/webhooks/url-policy.test.ts).
 */

/** A slice this long of a secret, found anywhere, counts as a leak. */
const SLICE = 16;

/**
 * The one kind of secret an answer exists to hand out (a prefix of the secrets' names, see
 * secretsOf): access tokens for the access-token route's body, the new endpoint's signing secret
 * for the body of the webhook creation. Any other secret in that answer is a leak.
 */
type Purpose = 'access_token' | 'webhook secret';

/** One answer of behalf, as the client saw it. */
interface Answer {
  label: string;
  text: string;
  /** What this answer's body exists to hand out, if anything: never its headers. */
  mayHold: Purpose | null;
}

/** What the flow needs: a behalf server, its API key, the emulated Google it talks to, and a webhook receiver. */
interface Target {
  behalfUrl: string;
  apiKey: string;
  emulator: RunningEmulator;
  receiver: Receiver;
  /** behalf's clock: the deliveries' signatures are verified at its time. */
  clock: Clock;
  /** Sends the webhook deliveries due now; absent where a started dispatcher sends them (`behalf serve`). */
  deliverWebhooks?: () => Promise<unknown>;
}

async function callEmulator<T = any>(
  emulator: RunningEmulator,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const response = await fetch(`${emulator.url}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`emulator ${method} ${path} → ${response.status}: ${text}`);
  return (text === '' ? {} : JSON.parse(text)) as T;
}

/**
 * A webhook endpoint added at the receiver, sign-in (first consent, code reuse, a bad code, no CSRF
 * header, a repeat sign-in without a new refresh token, a form-encoded one, an ID token not bound
 * to its access token), access tokens, a proxied Drive appDataFolder call, a forced refresh,
 * refreshes Google refuses (invalid_client, then invalid_grant), the verify route, API-key misuse,
 * a security event, sign-out and deletion, then the webhook deliveries those changes caused.
 * Every answer is recorded in `answers` and its status checked. Alice ends deleted, Bob revoked by
 * Google's security event, Carol signed in with tokens stored; the receiver holds every delivery,
 * each verified with the endpoint's secret.
 */
async function driveFullFlow(
  target: Target,
  answers: Answer[],
): Promise<{ alice: string; bob: string; carol: string; idToken: string; webhookSecret: string }> {
  const { behalfUrl, apiKey, emulator, receiver } = target;
  const google = <T = any>(method: string, path: string, body?: unknown) =>
    callEmulator<T>(emulator, method, path, body);

  async function answer(
    label: string,
    status: number,
    response: Response,
    mayHold: Purpose | null = null,
  ): Promise<any> {
    const text = await response.text();
    const headers = [...response.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n');
    answers.push({ label: `${label} (headers)`, text: headers, mayHold: null }, { label, text, mayHold });
    expect(response.status, `${label}: ${mayHold === null ? text : '(body not shown)'}`).toBe(status);
    return text === '' ? undefined : JSON.parse(text);
  }
  const signIn = (
    label: string,
    status: number,
    code: string,
    options: { form?: boolean; csrfHeader?: boolean } = {},
  ) =>
    fetch(`${behalfUrl}/v1/google/signin`, {
      method: 'POST',
      headers: {
        'content-type': options.form === true ? 'application/x-www-form-urlencoded' : 'application/json',
        ...(options.csrfHeader === false ? {} : { 'x-requested-with': 'XMLHttpRequest' }),
      },
      body: options.form === true ? new URLSearchParams({ code }).toString() : JSON.stringify({ code }),
    }).then((response) => answer(label, status, response));
  const service = (
    label: string,
    status: number,
    method: string,
    path: string,
    options: { body?: unknown; authorization?: string | null; mayHold?: Purpose } = {},
  ) => {
    const authorization = options.authorization === undefined ? `Bearer ${apiKey}` : options.authorization;
    return fetch(`${behalfUrl}${path}`, {
      method,
      headers: {
        ...(authorization === null ? {} : { authorization }),
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    }).then((response) => answer(label, status, response, options.mayHold ?? null));
  };
  const newUser = async (name: string) =>
    (
      await google<{ sub: string }>('POST', '/emulator/users', {
        email: `${name}-${randomBytes(4).toString('hex')}@example.com`,
        name,
      })
    ).sub;
  const mint = async (sub: string, prompt?: string) =>
    (
      await google<{ code: string }>('POST', '/emulator/codes', {
        sub,
        client_id: emulator.clients.apps.ios,
        scope: SIGNIN_SCOPES,
        ...(prompt === undefined ? {} : { prompt }),
      })
    ).code;
  const refreshesOf = async (sub: string) =>
    (await google<{ refreshes_by_sub: Record<string, number> }>('GET', '/emulator/stats')).refreshes_by_sub[
      sub
    ] ?? 0;

  const [alice, bob, carol] = await Promise.all([newUser('alice'), newUser('bob'), newUser('carol')]);
  const accessToken = (sub: string) => `/v1/users/${sub}/access-token`;
  const files = `/v1/users/${alice}/google/drive/v3/files`;

  // A webhook endpoint for every event type: its signing secret is in this answer and nowhere else.
  const webhook = await service('add a webhook endpoint', 201, 'POST', '/v1/webhooks', {
    body: { url: receiver.url },
    mayHold: 'webhook secret',
  });
  expect(webhook).toMatchObject({ url: receiver.url, events: null });
  expect(webhook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
  expect(await service('list webhook endpoints', 200, 'GET', '/v1/webhooks')).toMatchObject({
    webhooks: [{ id: webhook.id, deliveries: { pending: 0, delivered: 0, failed: 0 } }],
  });

  // Sign-in, and the ways it is refused.
  const first = await mint(alice);
  expect(await signIn('first sign-in', 201, first)).toMatchObject({
    created: true,
    grant: { refresh_token_received: true },
    action: 'none',
  });
  expect(await signIn('code reused', 400, first)).toMatchObject({ error: 'CODE_INVALID' });
  expect(await signIn('not a code', 400, '4/0Anot-a-real-code')).toMatchObject({ error: 'CODE_INVALID' });
  expect(await signIn('no CSRF header', 403, await mint(alice), { csrfHeader: false })).toMatchObject({
    error: 'CSRF_HEADER_REQUIRED',
  });
  expect(await signIn('repeat sign-in', 200, await mint(alice))).toMatchObject({
    created: false,
    grant: { refresh_token_received: false, offline_access: true },
    action: 'none',
  });
  expect(await signIn('form-encoded sign-in', 201, await mint(bob), { form: true })).toMatchObject({
    created: true,
  });
  await google('POST', '/emulator/faults', {
    path: '/token',
    id_token_claims: { at_hash: 'AAAAAAAAAAAAAAAAAAAAAA' },
    count: 1,
  });
  expect(await signIn('ID token of another access token', 401, await mint(carol))).toMatchObject({
    error: 'ID_TOKEN_INVALID',
    reason: 'at_hash_mismatch',
  });
  // Google counts the refused sign-in's consent: a new refresh token needs the consent screen again.
  expect(
    await signIn('sign-in with consent after a refused one', 201, await mint(carol, 'consent')),
  ).toMatchObject({
    grant: { refresh_token_received: true },
  });

  // Access tokens, and a Google API call through the proxy.
  const before = await service('access token', 200, 'POST', accessToken(alice), { mayHold: 'access_token' });
  expect(before.access_token).toMatch(/^ya29\./);
  await service('carol: access token', 200, 'POST', accessToken(carol), { mayHold: 'access_token' });
  expect(
    await service('proxied Drive create', 200, 'POST', files, {
      body: { name: 'notes.json', parents: ['appDataFolder'] },
    }),
  ).toMatchObject({
    name: 'notes.json',
  });
  expect(await service('proxied Drive list', 200, 'GET', `${files}?spaces=appDataFolder`)).toMatchObject({
    files: [{ name: 'notes.json' }],
  });

  // Google expires the access tokens: the proxied call is refused with 401, refreshes, retries.
  const refreshes = await refreshesOf(alice);
  expect(
    (await google<{ expired: number }>('POST', '/emulator/access-tokens/expire', { sub: alice })).expired,
  ).toBeGreaterThan(0);
  expect(
    await service('proxied Drive list, token expired at Google', 200, 'GET', `${files}?spaces=appDataFolder`),
  ).toMatchObject({
    files: [{ name: 'notes.json' }],
  });
  expect(await refreshesOf(alice)).toBe(refreshes + 1);
  const after = await service('access token after the forced refresh', 200, 'POST', accessToken(alice), {
    mayHold: 'access_token',
  });
  expect(after.access_token).not.toBe(before.access_token);

  // Refreshes Google refuses: this server's client (invalid_client), then the user's grant (invalid_grant).
  await google('POST', '/emulator/faults', {
    path: '/token',
    status: 401,
    error: 'invalid_client',
    error_description: 'Unauthorized',
    count: 1,
  });
  await google('POST', '/emulator/access-tokens/expire', { sub: alice });
  expect(
    await service('refresh refused: invalid_client', 502, 'GET', `${files}?spaces=appDataFolder`),
  ).toMatchObject({ error: 'CLIENT_MISCONFIGURED' });
  expect(await google('POST', '/emulator/grants/revoke', { sub: alice })).toEqual({ revoked: true });
  expect(
    await service('refresh refused: invalid_grant', 409, 'GET', `${files}?spaces=appDataFolder`),
  ).toMatchObject({ error: 'NEEDS_CONSENT' });
  expect(await service('access token of a dead grant', 409, 'POST', accessToken(alice))).toMatchObject({
    error: 'NEEDS_CONSENT',
  });
  expect(await service('user with a dead grant', 200, 'GET', `/v1/users/${alice}`)).toMatchObject({
    grant: { status: 'needs_consent' },
  });
  expect(await signIn('sign-in with consent again', 200, await mint(alice, 'consent'))).toMatchObject({
    grant: { refresh_token_received: true },
  });

  // The verify route.
  const nonce = 'n-0S6_WzA2Mj';
  const { id_token: idToken } = await google<{ id_token: string }>('POST', '/emulator/id-tokens', {
    sub: alice,
    nonce,
  });
  expect(
    await service('verify ID token', 200, 'POST', '/v1/id-tokens/verify', {
      body: { id_token: idToken, nonce },
    }),
  ).toMatchObject({
    claims: { sub: alice },
  });
  expect(
    await service('verify: another nonce', 401, 'POST', '/v1/id-tokens/verify', {
      body: { id_token: idToken, nonce: 'n-other' },
    }),
  ).toMatchObject({
    error: 'ID_TOKEN_INVALID',
    reason: 'nonce_mismatch',
  });
  expect(
    await service('verify: forged signature', 401, 'POST', '/v1/id-tokens/verify', {
      body: { id_token: `${idToken.slice(0, -4)}AAAA` },
    }),
  ).toMatchObject({ error: 'ID_TOKEN_INVALID', reason: 'bad_signature' });

  // The service API key misused: wrong by one character, missing, in the query string, as Basic credentials.
  const wrongKey = `${apiKey.slice(0, -1)}${apiKey.endsWith('A') ? 'B' : 'A'}`;
  for (const [label, authorization, query] of [
    ['wrong API key', `Bearer ${wrongKey}`, ''],
    ['no API key', null, ''],
    [
      'API key in the query string',
      null,
      `?key=${encodeURIComponent(apiKey)}&access_token=${encodeURIComponent(after.access_token)}`,
    ],
    ['API key as Basic credentials', `Basic ${Buffer.from(`behalf:${apiKey}`).toString('base64')}`, ''],
  ] as const) {
    expect(
      await service(label, 401, 'POST', `${accessToken(alice)}${query}`, { authorization }),
    ).toMatchObject({ error: 'UNAUTHENTICATED' });
  }

  // Google's RISC service: a security event revokes Bob's sessions; a stolen ID token posted as one is refused.
  expect(
    await google('POST', '/emulator/risc/events', {
      receiver_url: `${behalfUrl}/v1/google/risc`,
      event: 'sessions-revoked',
      sub: bob,
    }),
  ).toMatchObject({ delivered: true, receiver_status: 202 });
  expect(await service('access token after sessions-revoked', 409, 'POST', accessToken(bob))).toMatchObject({
    error: 'NEEDS_CONSENT',
  });
  const posed = await fetch(`${behalfUrl}/v1/google/risc`, {
    method: 'POST',
    headers: { 'content-type': 'application/secevent+jwt' },
    body: idToken,
  });
  expect(await answer('an ID token posted as a security event', 400, posed)).toMatchObject({
    error: 'SECURITY_EVENT_INVALID',
  });

  // Sign-out and deletion.
  expect(await service('sign-out', 200, 'POST', `/v1/users/${alice}/sign-out`)).toMatchObject({
    signed_out: true,
    revoked_at_google: true,
  });
  expect(await service('access token after sign-out', 409, 'POST', accessToken(alice))).toMatchObject({
    error: 'NEEDS_CONSENT',
  });
  expect(await service('delete', 200, 'DELETE', `/v1/users/${alice}`)).toMatchObject({ deleted: true });
  expect(await service('user after delete', 404, 'GET', `/v1/users/${alice}`)).toMatchObject({
    error: 'USER_NOT_FOUND',
  });

  // The webhooks those changes caused, each delivered once to the receiver and signed with the secret.
  await target.deliverWebhooks?.();
  const webhookCounts = async () => {
    const response = await fetch(`${behalfUrl}/v1/webhooks`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    return ((await response.json()) as { webhooks: Array<{ deliveries: { pending: number } }> }).webhooks[0]!
      .deliveries;
  };
  await waitUntil(
    "the flow's webhook deliveries are finished",
    async () => (await webhookCounts()).pending === 0,
  );
  const events = [
    `grant.needs_consent ${alice}`,
    `grant.restored ${alice}`,
    `grant.revoked ${bob}`,
    `security_event.received ${bob}`,
    `grant.revoked ${alice}`,
    `user.deleted ${alice}`,
  ];
  expect(
    await service('list webhook endpoints after the deliveries', 200, 'GET', '/v1/webhooks'),
  ).toMatchObject({
    webhooks: [{ id: webhook.id, deliveries: { pending: 0, delivered: events.length, failed: 0 } }],
  });
  expect(receiver.received).toHaveLength(events.length);
  const received = receiver.received.map((request) => {
    const { type, data } = verifyAt(target.clock, webhook.secret, request) as {
      type: string;
      data: { sub: string };
    };
    return `${type} ${data.sub}`;
  });
  expect(received.sort()).toEqual(events.sort());
  return { alice, bob, carol, idToken, webhookSecret: webhook.secret };
}

/** One secret: what it is, and its bytes. */
interface Secret {
  what: string;
  raw: Buffer;
}

/**
 * Every token, code and client secret the emulator issued, the service API key, the encryption key
 * and the webhook signing secret.
 */
async function secretsOf(
  emulator: RunningEmulator,
  apiKey: string,
  encryptionKeys: string,
  webhookSecret: string,
): Promise<Secret[]> {
  const { tokens } = await callEmulator<{ tokens: Array<{ type: string; value: string }> }>(
    emulator,
    'GET',
    '/emulator/tokens',
  );
  const { server_client: client } = await callEmulator<{ server_client: { client_secret: string } }>(
    emulator,
    'GET',
    '/emulator/clients',
  );
  const kinds = new Set(tokens.map((t) => t.type));
  expect([...kinds].sort(), 'the emulator issued every kind of token in the flow').toEqual([
    'access_token',
    'code',
    'id_token',
    'refresh_token',
  ]);
  return [
    ...tokens.map((t, i) => ({ what: `${t.type} #${i}`, raw: Buffer.from(t.value) })),
    { what: 'client secret', raw: Buffer.from(client.client_secret) },
    // bhf_<id>_<secret>: the id is public (stored, logged); the secret after it is not.
    { what: 'service API key', raw: Buffer.from(apiKey.slice('bhf_'.length + 13)) },
    ...encryptionKeys.split(',').map((entry) => ({
      what: 'encryption key',
      raw: Buffer.from(entry.slice(entry.indexOf(':') + 1), 'base64'),
    })),
    // whsec_<base64 of the key>: the string the creation answer shows, and the key bytes it signs
    // with. One secret in two spellings, under one name (see sliceIndex).
    { what: 'webhook secret', raw: Buffer.from(webhookSecret) },
    { what: 'webhook secret', raw: Buffer.from(webhookSecret.slice('whsec_'.length), 'base64') },
  ];
}

/**
 * The forms a secret may leak in: its bytes, hex, and base64 and base64url at each of the three
 * alignments it can have inside a longer encoded string (e.g. `Basic base64(id:secret)`), less the
 * edge characters that depend on the neighbours.
 */
function formsOf(raw: Buffer): string[] {
  const forms = [raw.toString('latin1'), raw.toString('hex')];
  for (const pad of [0, 1, 2]) {
    const base64 = Buffer.concat([Buffer.alloc(pad), raw])
      .toString('base64')
      .slice(pad === 0 ? 0 : 4, -4);
    forms.push(base64, base64.replaceAll('+', '-').replaceAll('/', '_'));
  }
  return forms;
}

/**
 * Every SLICE-character slice of every form of every secret, to what it reveals. A slice that
 * two different secrets share is not a secret (an ID token's header and issuer are the same in
 * every ID token; what is its own is its claims and its signature), so it is left out. Secrets are
 * told apart by name: two spellings of one secret (a webhook secret's `whsec_` string and its key
 * bytes, whose base64 is that string's tail) are one owner, and keep the slices they share.
 */
function sliceIndex(secrets: Secret[]): Map<string, string> {
  const owners = new Map<string, Set<string>>();
  for (const secret of secrets) {
    for (const form of formsOf(secret.raw)) {
      for (let at = 0; at + SLICE <= form.length; at++) {
        const slice = form.slice(at, at + SLICE);
        owners.set(slice, (owners.get(slice) ?? new Set()).add(secret.what));
      }
    }
  }
  const index = new Map<string, string>();
  for (const [slice, [owner, ...others]] of owners) if (others.length === 0) index.set(slice, owner!);
  return index;
}

/** Where any slice of a secret shows up: `where: what` for each hit. */
function scan(
  index: Map<string, string>,
  haystacks: Array<{ where: string; text: string | Buffer; mayHold?: Purpose | null }>,
): string[] {
  const hits = new Set<string>();
  for (const { where, text, mayHold } of haystacks) {
    const hay = (Buffer.isBuffer(text) ? text : Buffer.from(text)).toString('latin1');
    for (let at = 0; at + SLICE <= hay.length; at++) {
      const what = index.get(hay.slice(at, at + SLICE));
      if (what === undefined || (mayHold != null && what.startsWith(mayHold))) continue;
      hits.add(`${where}: ${what}`);
    }
  }
  return [...hits];
}

/**
 * What the receiver got from behalf: each delivery's path, headers and body. The signature header
 * is an HMAC keyed with the secret, not the secret: no slice of it may match.
 */
function deliveriesOf(receiver: Receiver): Array<{ where: string; text: string }> {
  return receiver.received.flatMap((request, i) => [
    {
      where: `webhook delivery ${i} (headers)`,
      text: [request.path, ...Object.entries(request.headers).map(([k, v]) => `${k}: ${v}`)].join('\n'),
    },
    { where: `webhook delivery ${i}`, text: request.body },
  ]);
}

/** The scan itself finds a slice of each secret planted in a log line, whole, cut, and encoded. */
function expectScanFindsPlantedSlices(index: Map<string, string>, secrets: Secret[]): void {
  for (const secret of secrets) {
    // The end of each secret is its own: an ID token's signature, a random token's tail.
    const slice = secret.raw.subarray(secret.raw.length - SLICE - 3, secret.raw.length - 3);
    const planted = [
      {
        where: 'a log line with a cut secret',
        text: Buffer.concat([Buffer.from('{"msg":"refreshing","t":"'), slice, Buffer.from('…"}')]),
      },
      {
        where: 'a base64url log line',
        text: `{"blob":"${Buffer.concat([Buffer.from('x'), secret.raw]).toString('base64url')}"}`,
      },
    ];
    const found = planted.map((p) => `${p.where}: ${secret.what}`);
    expect(scan(index, planted), secret.what).toEqual(found);
    // Each allowance is narrow: an answer made to hand out one kind of secret shows any other.
    for (const mayHold of ['access_token', 'webhook secret'] as const) {
      expect(
        scan(
          index,
          planted.map((p) => ({ ...p, mayHold })),
        ),
        `${secret.what} in an answer that may hold ${mayHold}`,
      ).toEqual(secret.what.startsWith(mayHold) ? [] : found);
    }
  }
  expect(
    scan(index, [
      { where: 'clean', text: '{"msg":"request completed","req":{"url":"/v1/users/1234/access-token"}}' },
    ]),
  ).toEqual([]);
}

describe('no secret leaves behalf: in process, production logger at trace', () => {
  let h: Harness;
  let receiver: Receiver;
  const answers: Answer[] = [];
  const errors: string[] = [];
  /** What the library answers an embedding app (its webhook endpoints and deliveries). */
  const reads: string[] = [];
  let carol: string;
  let webhookSecret: string;

  beforeAll(async () => {
    h = await startHarness({ env: { BEHALF_LOG_LEVEL: 'trace', BEHALF_WEBHOOK_ALLOW_PRIVATE: 'true' } });
    receiver = await Receiver.start();
  });
  afterAll(async () => {
    await h?.close();
    await receiver?.close();
  });

  it('drives the full flow, every step answered as expected', async () => {
    expect(h.runtime.logger.level).toBe('trace');
    const { alice, bob, idToken, ...rest } = await driveFullFlow(
      {
        behalfUrl: h.url,
        apiKey: h.apiKey,
        emulator: h.emulator,
        receiver,
        clock: h.clock,
        // createServer starts no dispatcher (`behalf serve` does): send what is due, as it would.
        deliverWebhooks: () => h.runtime.behalf.webhooks.deliverDue(),
      },
      answers,
    );
    ({ carol, webhookSecret } = rest);
    const { webhooks } = h.runtime.behalf;
    const deliveries = await webhooks.listDeliveries();
    expect(deliveries.map((d) => d.status)).toEqual(Array(receiver.received.length).fill('delivered'));
    reads.push(
      JSON.stringify(await webhooks.listEndpoints()),
      JSON.stringify(deliveries),
      inspect(deliveries, { depth: 5 }),
    );
    // The library's errors, as an embedding app would log them.
    const failures: Array<[string, () => Promise<unknown>]> = [
      ['USER_NOT_FOUND', () => h.runtime.behalf.getAccessToken(alice)],
      ['NEEDS_CONSENT', () => h.runtime.behalf.getAccessToken(bob)],
      ['ID_TOKEN_INVALID', () => h.runtime.behalf.verifyIdToken(`${idToken.slice(0, -4)}AAAA`)],
      ['CODE_INVALID', () => h.runtime.behalf.signIn({ code: '4/0Anot-a-real-code' })],
    ];
    for (const [code, failure] of failures) {
      const error = await failure().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBehalfError(error) && error.code, code).toBe(code);
      errors.push(
        String(error),
        JSON.stringify(error),
        (error as Error).stack ?? '',
        inspect(error, { depth: 5 }),
      );
    }
  });

  it('finds no slice of any token, code, secret or key in answers, logs, errors or the database', async () => {
    const secrets = await secretsOf(h.emulator, h.apiKey, h.config.encryptionKeys!, webhookSecret);
    const index = sliceIndex(secrets);
    expectScanFindsPlantedSlices(index, secrets);
    expect(h.logs.some((line) => line.includes('"msg":"request completed"'))).toBe(true);
    const database = await h.databaseDump();
    expect(
      database.some((bytes) => bytes.includes(carol)),
      'the dump holds what behalf stored',
    ).toBe(true);
    const hits = scan(index, [
      ...answers.map((a) => ({ where: `answer "${a.label}"`, text: a.text, mayHold: a.mayHold })),
      ...deliveriesOf(receiver),
      ...h.logs.map((line, i) => ({ where: `log line ${i}`, text: line })),
      ...errors.map((text, i) => ({ where: `library error ${i}`, text })),
      ...reads.map((text, i) => ({ where: `library answer ${i}`, text })),
      ...database.map((bytes, i) => ({ where: `database part ${i}`, text: bytes })),
    ]);
    expect(hits).toEqual([]);
  });
});

describe(`no secret leaves behalf: \`behalf serve\` at trace (${TEST_BACKEND})`, () => {
  let world: GoogleWorld;
  let database: SharedDatabase;
  let server: ServeProcess;
  let receiver: Receiver;
  let apiKey: string;
  let carol: string;
  let webhookSecret: string;
  const answers: Answer[] = [];

  beforeAll(async () => {
    world = await startGoogleWorld();
    receiver = await Receiver.start();
    database =
      TEST_BACKEND === 'postgres'
        ? await createSharedPostgres(await requirePostgres(), 'leak')
        : await createSharedSqlite();
    apiKey = await database.createApiKey();
    server = await startServeProcess(
      { ...world.env, BEHALF_DATABASE_URL: database.url, BEHALF_WEBHOOK_ALLOW_PRIVATE: 'true' },
      { logLevel: 'trace', record: true },
    );
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    await world?.close();
    await receiver?.close();
    await database?.drop();
  }, 60_000);

  it('drives the full flow, every step answered as expected', async () => {
    // The server's own dispatcher sends the deliveries (every second), on the system clock.
    ({ carol, webhookSecret } = await driveFullFlow(
      { behalfUrl: server.url, apiKey, emulator: world.emulator, receiver, clock: systemClock },
      answers,
    ));
  });

  it('finds no slice of any token, code, secret or key in answers, its stdout and stderr, or the database', async () => {
    await server.stop(); // everything it wrote is in
    const { stdout, stderr } = server.written();
    expect(stdout).toContain('"msg":"request completed"');
    const secrets = await secretsOf(world.emulator, apiKey, world.env.BEHALF_ENCRYPTION_KEYS!, webhookSecret);
    const index = sliceIndex(secrets);
    expectScanFindsPlantedSlices(index, secrets);
    const dump = await dumpDatabase(database.url);
    expect(
      dump.some((bytes) => bytes.includes(carol)),
      'the dump holds what behalf stored',
    ).toBe(true);
    const hits = scan(index, [
      ...answers.map((a) => ({ where: `answer "${a.label}"`, text: a.text, mayHold: a.mayHold })),
      ...deliveriesOf(receiver),
      { where: 'stdout', text: stdout },
      { where: 'stderr', text: stderr },
      ...dump.map((bytes, i) => ({ where: `database part ${i}`, text: bytes })),
    ]);
    expect(hits).toEqual([]);
  });
});
