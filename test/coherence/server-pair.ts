/**
 * Two `behalf serve` processes, A and B, over one database, and the lifecycle changes every
 * instance must honour (issue 11, point 1): each change is made through A while B holds the
 * user's token in memory (proven, see warmFromMemory); A refuses at once, B within the staleness
 * bound. The same tests run on Postgres (postgres-servers.test.ts) and on one SQLite file
 * (sqlite-processes.test.ts).
 */
import { performance } from 'node:perf_hooks';
import { expect, it } from 'vitest';
import { runCliProcess, startServeProcess, type ServeProcess } from '../support/behalf-processes.js';
import {
  DRIVE_LIST_PATH,
  startGoogleWorld,
  type GoogleWorld,
  type SecurityEventName,
} from '../support/google-world.js';
import type { SharedDatabase } from '../support/shared-database.js';
import {
  expectHonouredWithin,
  honoured,
  stale,
  STALENESS_BOUND_MS,
  waitUntilTime,
  warmFromMemory,
  type Verdict,
} from '../support/staleness.js';

export interface ServerPair {
  world: GoogleWorld;
  database: SharedDatabase;
  apiKey: string;
  /** The instance changes are made through. */
  a: ServeProcess;
  /** The other instance, whose memory must follow. */
  b: ServeProcess;
  /** The settings both were started with. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * Start A and B over `database` (which the pair then owns: close() drops it). B may reach it by
 * another URL (through a proxy the test can cut).
 */
export async function startServerPair(
  database: SharedDatabase,
  options: { bDatabaseUrl?: string } = {},
): Promise<ServerPair> {
  let world: GoogleWorld | undefined;
  let started: ServeProcess[] = [];
  try {
    world = await startGoogleWorld();
    const apiKey = await database.createApiKey();
    const env = { ...world.env, BEHALF_DATABASE_URL: database.url };
    const envB = { ...env, BEHALF_DATABASE_URL: options.bDatabaseUrl ?? database.url };
    // Both start at once; if one fails, the other is still stopped.
    const outcomes = await Promise.allSettled([startServeProcess(env), startServeProcess(envB)]);
    started = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
    const [a, b] = started as [ServeProcess, ServeProcess];
    const openWorld = world;
    return {
      world,
      database,
      apiKey,
      a,
      b,
      env,
      async close() {
        await Promise.all([a.stop(), b.stop()]);
        await openWorld.close();
        await database.drop();
      },
    };
  } catch (error) {
    await Promise.all(started.map((s) => s.stop()));
    await world?.close();
    await database.drop();
    throw error;
  }
}

/** behalf's service API on `server`, with the pair's API key. */
export function service(
  pair: ServerPair,
  server: ServeProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${pair.apiKey}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** `sub`'s access token from `server`; anything but 200 throws. */
export async function tokenFrom(pair: ServerPair, server: ServeProcess, sub: string): Promise<string> {
  const response = await service(pair, server, 'POST', `/v1/users/${sub}/access-token`);
  const body = (await response.json()) as { access_token?: string };
  if (response.status !== 200 || typeof body.access_token !== 'string')
    throw new Error(`access-token answered ${response.status}: ${JSON.stringify(body)}`);
  return body.access_token;
}

/** The status and error code the service API answers for a refusal. */
export const USER_NOT_FOUND = { status: 404, error: 'USER_NOT_FOUND' } as const;
export const NEEDS_CONSENT = { status: 409, error: 'NEEDS_CONSENT' } as const;
export const STORE_UNAVAILABLE = { status: 503, error: 'STORE_UNAVAILABLE' } as const;
type Refusal = typeof USER_NOT_FOUND | typeof NEEDS_CONSENT | typeof STORE_UNAVAILABLE;

/**
 * Whether `server`'s access-token route refuses `sub` as one of `refusals` (honoured) or still
 * serves a token (stale).
 */
export async function accessTokenVerdict(
  pair: ServerPair,
  server: ServeProcess,
  sub: string,
  ...refusals: Refusal[]
): Promise<Verdict> {
  const response = await service(pair, server, 'POST', `/v1/users/${sub}/access-token`);
  const body = (await response.json()) as { error?: string };
  if (response.status === 200) return stale('access-token answered 200 with a token');
  if (refusals.some((r) => response.status === r.status && body.error === r.error)) return honoured;
  throw new Error(
    `access-token answered ${response.status} ${JSON.stringify(body)}, expected 200 or ${refusals.map((r) => `${r.status} ${r.error}`).join(' or ')}`,
  );
}

/**
 * Whether `server`'s proxy refuses `sub` as `refusal` without calling Google (honoured), or
 * still calls Google with a token it held (stale, whatever Google then answered).
 */
export async function proxyVerdict(
  pair: ServerPair,
  server: ServeProcess,
  sub: string,
  refusal: Refusal,
): Promise<Verdict> {
  const before = await pair.world.driveCalls();
  const response = await service(pair, server, 'GET', `/v1/users/${sub}/google${DRIVE_LIST_PATH}`);
  const text = await response.text();
  const calls = (await pair.world.driveCalls()) - before;
  if (calls > 0 || response.status === 200)
    return stale(`the proxy called Drive (${calls} call(s)) and answered ${response.status}`);
  if (response.status === refusal.status && JSON.parse(text).error === refusal.error) return honoured;
  throw new Error(
    `the proxy answered ${response.status} ${text}, expected ${refusal.status} ${refusal.error}`,
  );
}

/**
 * A user signed in through A whose token A and B both hold in memory (proven). They may hold
 * different tokens: one may have refreshed while the other still served its own, within the bound.
 */
async function warmUser(pair: ServerPair): Promise<{ sub: string; heldByA: string; heldByB: string }> {
  const sub = await pair.world.signedInUser(pair.a.url);
  const [heldByA, heldByB] = await warmFromMemory(
    [() => tokenFrom(pair, pair.a, sub), () => tokenFrom(pair, pair.b, sub)],
    () => pair.database.expireStoredTokenSilently(sub),
  );
  return { sub, heldByA: heldByA!, heldByB: heldByB! };
}

/**
 * A change made through A (`change` resolves when A, or the process that made it, has answered):
 * A's access-token route refuses at once, B's within the bound.
 */
async function expectRefusedEverywhere(
  pair: ServerPair,
  sub: string,
  refusal: Refusal,
  change: () => Promise<void>,
  what: string,
): Promise<number> {
  await change();
  const since = performance.now();
  expect(
    await accessTokenVerdict(pair, pair.a, sub, refusal),
    `${what}: A, which made the change, refuses at once`,
  ).toEqual(honoured);
  return expectHonouredWithin(
    `${what}: B's access-token route`,
    () => accessTokenVerdict(pair, pair.b, sub, refusal),
    since,
  );
}

const RISC_REFUSALS: Array<[SecurityEventName, Refusal]> = [
  ['account-disabled', NEEDS_CONSENT],
  ['tokens-revoked', NEEDS_CONSENT],
  ['sessions-revoked', NEEDS_CONSENT],
  ['account-purged', USER_NOT_FOUND],
];

/** The lifecycle tests, on whatever pair `pair()` gives once the suite has started. */
export function lifecycleChangeTests(pair: () => ServerPair): void {
  const bound = `${STALENESS_BOUND_MS} ms`;

  it(`DELETE /v1/users/{sub} on A: A answers 404 at once, B within ${bound}`, async () => {
    const p = pair();
    const { sub } = await warmUser(p);
    await expectRefusedEverywhere(
      p,
      sub,
      USER_NOT_FOUND,
      async () => expect((await service(p, p.a, 'DELETE', `/v1/users/${sub}`)).status).toBe(200),
      'delete',
    );
  });

  it(`POST /v1/users/{sub}/sign-out on A: A answers 409 at once, B within ${bound}`, async () => {
    const p = pair();
    const { sub } = await warmUser(p);
    await expectRefusedEverywhere(
      p,
      sub,
      NEEDS_CONSENT,
      async () => expect((await service(p, p.a, 'POST', `/v1/users/${sub}/sign-out`)).status).toBe(200),
      'sign-out',
    );
  });

  it.each(RISC_REFUSALS)(
    `RISC %s pushed to A: A refuses at once, B's access-token route within ${bound}`,
    async (event, refusal) => {
      const p = pair();
      const { sub } = await warmUser(p);
      await expectRefusedEverywhere(
        p,
        sub,
        refusal,
        async () =>
          expect(await p.world.pushSecurityEvent(p.a.url, event, sub)).toMatchObject({
            delivered: true,
            receiver_status: 202,
          }),
        event,
      );
    },
  );

  // Google revoked these grants itself, so B's stale token would fail at Drive and B would then find
  // the grant gone: refused either way, and a first look inside the bound repairs a stale memory.
  // What tells them apart is whether B calls Google at all once the bound has passed.
  it.each(['account-disabled', 'tokens-revoked'] as const)(
    `RISC %s pushed to A: once ${bound} have passed, B's proxy refuses without calling Google`,
    async (event) => {
      const p = pair();
      const { sub } = await warmUser(p);
      expect(await p.world.pushSecurityEvent(p.a.url, event, sub)).toMatchObject({
        delivered: true,
        receiver_status: 202,
      });
      const since = performance.now();
      await waitUntilTime(since + STALENESS_BOUND_MS);
      expect(await proxyVerdict(p, p.b, sub, NEEDS_CONSENT)).toEqual(honoured);
    },
  );

  // sessions-revoked leaves Google's grant alive: a stale B would go on reading the user's Drive.
  it(`RISC sessions-revoked pushed to A: B's proxy stops reading the user's Drive within ${bound}`, async () => {
    const p = pair();
    const { sub } = await warmUser(p);
    expect((await service(p, p.b, 'GET', `/v1/users/${sub}/google${DRIVE_LIST_PATH}`)).status).toBe(200);
    expect(await p.world.pushSecurityEvent(p.a.url, 'sessions-revoked', sub)).toMatchObject({
      delivered: true,
      receiver_status: 202,
    });
    const since = performance.now();
    await expectHonouredWithin(
      "sessions-revoked: B's proxy",
      () => proxyVerdict(p, p.b, sub, NEEDS_CONSENT),
      since,
    );
  });

  it(`needs_consent after invalid_grant, found by A: B refuses within ${bound}`, async () => {
    const p = pair();
    const { sub } = await warmUser(p);
    // The user removes the app at Google; A learns it when Drive refuses its token and the
    // refresh answers invalid_grant.
    await p.world.control('POST', '/emulator/grants/revoke', { sub });
    await expectRefusedEverywhere(
      p,
      sub,
      NEEDS_CONSENT,
      async () => {
        const response = await service(p, p.a, 'GET', `/v1/users/${sub}/google${DRIVE_LIST_PATH}`);
        expect(response.status, await response.text()).toBe(409);
      },
      'needs_consent',
    );
    expect(((await (await service(p, p.b, 'GET', `/v1/users/${sub}`)).json()) as any).grant.status).toBe(
      'needs_consent',
    );
  });

  it(`needs_consent found by another process (behalf sweep): A and B refuse within ${bound}`, async () => {
    const p = pair();
    const { sub } = await warmUser(p);
    await p.world.control('POST', '/emulator/grants/revoke', { sub });
    // The stored token is due (warmUser expired it), so the sweep refreshes it and meets invalid_grant.
    const sweep = await runCliProcess(['sweep'], p.env);
    expect(sweep.code, sweep.output).toBe(0);
    expect(sweep.output).toContain(sub);
    const since = performance.now();
    await expectHonouredWithin(
      "sweep's needs_consent: A's access-token route",
      () => accessTokenVerdict(p, p.a, sub, NEEDS_CONSENT),
      since,
    );
    await expectHonouredWithin(
      "sweep's needs_consent: B's access-token route",
      () => accessTokenVerdict(p, p.b, sub, NEEDS_CONSENT),
      since,
    );
  });

  it.each([
    ['with consent (new refresh token)', { prompt: 'consent' }],
    ['without consent (new access token only)', {}],
  ])(
    `a new sign-in through A %s: A serves the new token at once, B within ${bound}`,
    async (_label, options) => {
      const p = pair();
      const { sub, heldByA, heldByB } = await warmUser(p);
      const response = await p.world.signIn(p.a.url, await p.world.mintCode(sub, options));
      expect(response.status).toBe(200);
      const since = performance.now();
      const fresh = await p.world.lastIssued(sub, 'access_token');
      expect([heldByA, heldByB]).not.toContain(fresh);
      expect(await tokenFrom(p, p.a, sub), 'A, which stored the sign-in, serves its token at once').toBe(
        fresh,
      );
      await expectHonouredWithin(
        "new sign-in: B's access-token route",
        async () => {
          const token = await tokenFrom(p, p.b, sub);
          if (token === heldByB) return stale('B answered the token it held before the sign-in');
          if (token === fresh) return honoured;
          throw new Error('B answered a token that is neither the old nor the new one');
        },
        since,
      );
    },
  );
}
