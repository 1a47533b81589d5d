import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { whileMachineIsBusy } from '../support/busy-machine.js';
import { createSharedSqlite } from '../support/shared-database.js';
import { startServerPair, tokenFrom, type ServerPair } from './server-pair.js';

const USERS = 20;
const REQUESTS_PER_USER_PER_PROCESS = 5;
/** Google holds each refresh this long, so that the other process asks while it is in flight. */
const GOOGLE_LATENCY_MS = 1_000;

interface Stats {
  token_requests: { refresh_token: number };
  refreshes_by_sub: Record<string, number>;
}

/**
 * Issue 16: single-flight across processes on SQLite, proven on its own. Each process keeps one
 * refresh per user in flight through its in-process map; only the refresh lease in the shared
 * database file keeps two processes from refreshing the same user. (The Postgres counterpart is
 * test/postgres/multi-instance.test.ts.)
 */
describe('two behalf processes on one SQLite file: one refresh per user', () => {
  let pair: ServerPair;
  beforeAll(async () => {
    pair = await startServerPair(await createSharedSqlite());
  }, 120_000);
  afterAll(async () => {
    await pair?.close();
  }, 60_000);

  it(`busy machine, tokens due: ${USERS * REQUESTS_PER_USER_PER_PROCESS * 2} concurrent token requests over ${USERS} users on both processes, exactly ${USERS} refreshes at Google`, async () => {
    const { world, a, b } = pair;
    // Access tokens of 60 s are due at once (within the 5-minute refresh margin).
    await world.control('POST', '/emulator/config', { access_token_lifetime_seconds: 60 });
    const subs: string[] = [];
    try {
      for (let i = 0; i < USERS; i++) subs.push(await world.signedInUser(i % 2 === 0 ? a.url : b.url));
    } finally {
      await world.control('POST', '/emulator/config', { access_token_lifetime_seconds: 3599 });
    }
    await world.control('POST', '/emulator/stats/reset');
    await world.control('POST', '/emulator/faults', {
      path: '/token',
      latency_ms: GOOGLE_LATENCY_MS,
      count: USERS,
    });

    const answers = await whileMachineIsBusy(() =>
      Promise.all(
        subs.flatMap((sub) =>
          [a, b].flatMap((server) =>
            Array.from({ length: REQUESTS_PER_USER_PER_PROCESS }, async () => ({
              sub,
              token: await tokenFrom(pair, server, sub),
            })),
          ),
        ),
      ),
    );

    const stats = await world.control<Stats>('GET', '/emulator/stats');
    expect(Object.entries(stats.refreshes_by_sub).filter(([, n]) => n !== 1)).toEqual([]);
    for (const sub of subs) expect(stats.refreshes_by_sub[sub]).toBe(1);
    expect(stats.token_requests.refresh_token).toBe(USERS);
    // Both processes answered every caller with the one token Google minted for that user.
    for (const sub of subs) {
      const tokens = new Set(answers.filter((answer) => answer.sub === sub).map((answer) => answer.token));
      expect([...tokens]).toEqual([await world.lastIssued(sub, 'access_token')]);
    }
  }, 120_000);
});
