import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresForTests, startTcpProxy, type TcpProxy } from '../support/postgres.js';
import { createSharedPostgres } from '../support/shared-database.js';
import {
  expectHonouredWithin,
  honoured,
  pause,
  STALENESS_BOUND_MS,
  warmFromMemory,
} from '../support/staleness.js';
import {
  accessTokenVerdict,
  lifecycleChangeTests,
  service,
  startServerPair,
  STORE_UNAVAILABLE,
  tokenFrom,
  USER_NOT_FOUND,
  type ServerPair,
} from './server-pair.js';

const server = await postgresForTests('coherent token caches across behalf servers on Postgres');

/**
 * Issue 11, point 1, on Postgres: two `behalf serve` processes over one database. A change made
 * through one is honoured by the other within the staleness bound, also while the other's
 * notification channel (its LISTEN connection) is lost and comes back.
 */
describe.runIf(server !== undefined)('coherent caches: two behalf servers over one Postgres', () => {
  let pair: ServerPair;
  /** B reaches Postgres through it, so a test can keep B from opening new connections. */
  let proxy: TcpProxy;
  beforeAll(async () => {
    const database = await createSharedPostgres(server!, 'coherence');
    proxy = await startTcpProxy(database.url);
    pair = await startServerPair(database, { bDatabaseUrl: proxy.via(database.url) });
  }, 120_000);
  afterAll(async () => {
    await pair?.close();
    await proxy?.close();
  }, 60_000);

  lifecycleChangeTests(() => pair);

  describe('the notification channel lost and back', () => {
    /** End every behalf LISTEN session on the pair's database (B's, and A's, which A does not need to see its own changes). */
    const killListeners = async () =>
      (
        await pair.database.query<{ pid: number }>(
          // In the select list, not the WHERE clause: Postgres may evaluate WHERE conditions in any order.
          "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'behalf-listener' AND pid <> pg_backend_pid()",
          [pair.database.name],
        )
      ).map((row) => row.pid);
    const listenerPids = async () =>
      (
        await pair.database.query<{ pid: number }>(
          "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'behalf-listener'",
          [pair.database.name],
        )
      ).map((row) => row.pid);

    const warmOnB = async (sub: string) =>
      warmFromMemory([() => tokenFrom(pair, pair.b, sub)], () =>
        pair.database.expireStoredTokenSilently(sub),
      );

    /** Wait (bounded) until both instances listen on sessions other than `killed`. */
    const listenersBack = async (killed: number[]) => {
      const deadline = performance.now() + 20_000;
      let current: number[] = [];
      while ((current = (await listenerPids()).filter((pid) => !killed.includes(pid))).length < 2) {
        if (performance.now() > deadline)
          throw new Error(`the listeners did not come back: ${JSON.stringify(current)}`);
        await pause(20);
      }
    };

    // The change lands at different moments of B's reconnection: at once (B has not noticed the
    // loss), while it waits to reconnect, and around the moment it is back.
    it.each([0, 50, 150, 400])(
      `a delete made %i ms after the listeners are killed is refused by B within ${STALENESS_BOUND_MS} ms`,
      async (delayMs) => {
        const sub = await pair.world.signedInUser(pair.a.url);
        await warmOnB(sub);
        expect((await killListeners()).length).toBeGreaterThanOrEqual(2);
        // Not a stand-in for synchronisation: it places the change at a chosen point of the outage.
        if (delayMs > 0) await pause(delayMs);
        expect((await service(pair, pair.a, 'DELETE', `/v1/users/${sub}`)).status).toBe(200);
        const since = performance.now();
        await expectHonouredWithin(
          "delete during the outage: B's access-token route",
          () => accessTokenVerdict(pair, pair.b, sub, USER_NOT_FOUND),
          since,
        );
      },
    );

    // Above, B may be back before the change commits. Here it is certainly away: B cannot open a
    // connection until the change is made, so the notification is lost for good.
    it('a delete made while B cannot listen: refused within the bound, still refused once B listens again, and B serves from memory again', async () => {
      const sub = await pair.world.signedInUser(pair.a.url);
      await warmOnB(sub);
      proxy.refuseNew();
      let killed: number[];
      try {
        killed = await killListeners();
        expect(killed.length).toBeGreaterThanOrEqual(2);
        expect((await service(pair, pair.a, 'DELETE', `/v1/users/${sub}`)).status).toBe(200);
        const since = performance.now();
        // B reads the database on connections it already has (503 if it needed a new one).
        await expectHonouredWithin(
          "delete while B cannot listen: B's access-token route",
          () => accessTokenVerdict(pair, pair.b, sub, USER_NOT_FOUND, STORE_UNAVAILABLE),
          since,
        );
      } finally {
        await proxy.up();
      }
      await listenersBack(killed);
      // Memory is trusted again: B answers another user's token from memory (proven by warmFromMemory)...
      const other = await pair.world.signedInUser(pair.a.url);
      await warmOnB(other);
      // ...but not the deleted user's, which it held before the outage: everything held then was dropped.
      expect(await accessTokenVerdict(pair, pair.b, sub, USER_NOT_FOUND)).toEqual(honoured);
    });

    // The listener's connection goes silent, as behind a network path that drops packets: no
    // reset, no error, so B cannot tell it missed anything. Only its unanswered pings can: memory
    // must stop being trusted within the bound, and be trusted again once the pings are answered.
    it("a delete made while B's listener connection is silent: refused within the bound, and memory is trusted again once it answers", async () => {
      const sub = await pair.world.signedInUser(pair.a.url);
      await warmOnB(sub);
      expect(proxy.stall('behalf-listener')).toBeGreaterThanOrEqual(1);
      try {
        expect((await service(pair, pair.a, 'DELETE', `/v1/users/${sub}`)).status).toBe(200);
        const since = performance.now();
        await expectHonouredWithin(
          "delete while B's listener is silent: B's access-token route",
          () => accessTokenVerdict(pair, pair.b, sub, USER_NOT_FOUND),
          since,
        );
      } finally {
        proxy.resume();
      }
      const other = await pair.world.signedInUser(pair.a.url);
      await warmOnB(other);
      expect(await accessTokenVerdict(pair, pair.b, sub, USER_NOT_FOUND)).toEqual(honoured);
    });

    it('once B is listening again it serves from memory again, and hears changes again', async () => {
      const killed = await killListeners();
      expect(killed.length).toBeGreaterThanOrEqual(2);
      await listenersBack(killed);
      // Memory is trusted again: B answers a token from memory (proven by warmFromMemory).
      const sub = await pair.world.signedInUser(pair.a.url);
      const [token] = await warmOnB(sub);
      expect(await tokenFrom(pair, pair.b, sub)).toBe(token);
      // And changes reach it through the new session: a delete on A is refused by B in time.
      expect((await service(pair, pair.a, 'DELETE', `/v1/users/${sub}`)).status).toBe(200);
      const since = performance.now();
      await expectHonouredWithin(
        "delete after the listener is back: B's access-token route",
        () => accessTokenVerdict(pair, pair.b, sub, USER_NOT_FOUND),
        since,
      );
    });
  });
});
