import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBehalf, isBehalfError, type Behalf } from '../../src/index.js';
import { DRIVE_LIST_PATH, startGoogleWorld, type GoogleWorld } from '../support/google-world.js';
import { loopbackFetch, loopbackRequest } from '../support/no-network.js';
import { postgresForTests } from '../support/postgres.js';
import { createSharedPostgres, createSharedSqlite, type SharedDatabase } from '../support/shared-database.js';
import {
  expectHonouredWithin,
  honoured,
  stale,
  STALENESS_BOUND_MS,
  warmFromMemory,
  type Verdict,
} from '../support/staleness.js';

const server = await postgresForTests('coherent token caches across library runtimes on Postgres');

/**
 * Issue 11, point 1, through the library: two behalf runtimes (`createBehalf`, as an embedding
 * app builds them) over one database, in one process. A user deleted through one is refused by
 * every calling path of the other within the staleness bound: getAccessToken, fetch, and the
 * googleapis auth client.
 */
function libraryRuntimeTests(backend: string, openDatabase: () => Promise<SharedDatabase>): void {
  describe(`coherent caches: two library runtimes over one ${backend} database`, () => {
    let world: GoogleWorld;
    let database: SharedDatabase;
    let one: Behalf;
    let two: Behalf;

    beforeAll(async () => {
      world = await startGoogleWorld();
      database = await openDatabase();
      const options = {
        ...world.library,
        databaseUrl: database.url,
        fetch: loopbackFetch,
        request: loopbackRequest,
        logger: pino({ level: 'silent' }),
      };
      one = await createBehalf(options);
      two = await createBehalf(options);
    }, 60_000);
    afterAll(async () => {
      await one?.close();
      await two?.close();
      await world?.close();
      await database?.drop();
    }, 60_000);

    const driveUrl = () => `${world.emulator.url}${DRIVE_LIST_PATH}`;
    /** What the other runtime does with a call that either serves the user (stale) or refuses them. */
    const verdictOf = async (call: () => Promise<unknown>): Promise<Verdict> => {
      try {
        const answer = await call();
        if (answer instanceof Response) await answer.arrayBuffer();
        return stale('the call was served');
      } catch (error) {
        if (isBehalfError(error) && error.code === 'USER_NOT_FOUND') return honoured;
        throw error;
      }
    };
    const paths: Array<[string, (sub: string) => Promise<unknown>]> = [
      ['behalf.getAccessToken(sub)', (sub) => two.getAccessToken(sub)],
      [
        'behalf.fetch(sub, Drive)',
        async (sub) => {
          const response = await two.fetch(sub, driveUrl());
          if (response.status !== 200) throw new Error(`Drive answered ${response.status}`);
          return response;
        },
      ],
      ['behalf.authFor(sub).getAccessToken()', (sub) => two.authFor(sub).getAccessToken()],
      ['behalf.authFor(sub).request(Drive)', (sub) => two.authFor(sub).request({ url: driveUrl() })],
    ];

    it.each(paths)(
      `%s on one runtime honours a delete made by the other within ${STALENESS_BOUND_MS} ms`,
      async (name, call) => {
        const sub = await world.newUser();
        await one.signIn({ code: await world.mintCode(sub) });
        const read = (behalf: Behalf) => async () => (await behalf.getAccessToken(sub)).token;
        await warmFromMemory([read(one), read(two)], () => database.expireStoredTokenSilently(sub));
        expect(await verdictOf(() => call(sub)), 'before the change').toMatchObject({ stale: true });

        // Google keeps the grant (its revocation endpoint says the token is already invalid), so a
        // token still held in memory would go on working at Drive.
        await world.control('POST', '/emulator/faults', {
          path: '/revoke',
          status: 400,
          error: 'invalid_token',
          count: 1,
        });
        expect(await one.deleteUser(sub)).toEqual({ revokedAtGoogle: false });
        const since = performance.now();
        await expect(
          one.getAccessToken(sub),
          'the runtime that deleted refuses at once',
        ).rejects.toMatchObject({ code: 'USER_NOT_FOUND' });
        await expectHonouredWithin(`${name} on the other runtime`, () => verdictOf(() => call(sub)), since);
      },
    );
  });
}

// describe.runIf, not a plain if: without Postgres these tests are counted as skipped.
describe.runIf(server !== undefined)('on Postgres', () =>
  libraryRuntimeTests('Postgres', () => createSharedPostgres(server!, 'coherence_lib')),
);
libraryRuntimeTests('SQLite', () => createSharedSqlite());
