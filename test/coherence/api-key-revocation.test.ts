import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, createServer, type BehalfRuntime } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { openStore, revokeApiKey } from '../../src/vault/index.js';
import { startGoogleWorld, type GoogleWorld } from '../support/google-world.js';
import { loopbackFetch, loopbackRequest } from '../support/no-network.js';
import { postgresForTests } from '../support/postgres.js';
import { createSharedPostgres, createSharedSqlite, type SharedDatabase } from '../support/shared-database.js';
import {
  expectHonouredWithin,
  honoured,
  stale,
  STALENESS_BOUND_MS,
  type Verdict,
} from '../support/staleness.js';

const server = await postgresForTests('API key revocation across servers on Postgres');

interface Instance {
  url: string;
  runtime: BehalfRuntime;
  server: FastifyInstance;
}

/**
 * Issue 14: servers remember the service API keys they verified (src/http/api-key-cache.ts), and
 * a revoked key must still stop working at once on the server that revoked it and within the
 * staleness bound on every other server sharing the database, as a grant change does. Two servers
 * in this process over one database; each is warm with the key (it answered a request with it)
 * before the key is revoked.
 */
function revocationTests(backend: string, openDatabase: () => Promise<SharedDatabase>): void {
  describe(`API key revocation: two servers over one ${backend} database`, () => {
    let world: GoogleWorld;
    let database: SharedDatabase;
    const instances: Instance[] = [];

    beforeAll(async () => {
      world = await startGoogleWorld();
      database = await openDatabase();
      const config = await loadConfig({
        mode: 'production',
        env: { ...world.env, BEHALF_DATABASE_URL: database.url, BEHALF_PORT: '0', BEHALF_HOST: '127.0.0.1' },
      });
      for (let i = 0; i < 2; i++) {
        const runtime = await createRuntime(config, {
          logger: pino({ level: 'silent' }),
          fetch: loopbackFetch,
          request: loopbackRequest,
        });
        const app = createServer(config, runtime);
        instances.push({ runtime, server: app, url: '' });
        await app.listen({ port: 0, host: '127.0.0.1' });
        const address = app.server.address();
        instances[i]!.url =
          `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
      }
    }, 60_000);
    afterAll(async () => {
      for (const instance of instances) {
        await instance.server.close();
        await instance.runtime.behalf.close();
      }
      await world?.close();
      await database?.drop();
    }, 60_000);

    const status = async (instance: Instance, key: string) => {
      const response = await fetch(`${instance.url}/v1/api-keys`, {
        headers: { authorization: `Bearer ${key}` },
      });
      await response.arrayBuffer();
      return response.status;
    };
    const verdict = (instance: Instance, key: string) => async (): Promise<Verdict> => {
      const answer = await status(instance, key);
      if (answer === 401) return honoured;
      if (answer === 200) return stale('the revoked key was accepted');
      throw new Error(`GET /v1/api-keys answered ${answer}`);
    };
    const warm = async (key: string) => {
      for (const instance of instances)
        expect(await status(instance, key), 'before the revocation').toBe(200);
    };

    it(`a key revoked over HTTP on one server is refused there at once, on the other within ${STALENESS_BOUND_MS} ms`, async () => {
      const [a, b] = instances as [Instance, Instance];
      const admin = await database.createApiKey();
      const key = await database.createApiKey();
      await warm(key);
      const revoked = await fetch(`${a.url}/v1/api-keys/${key.slice(4, 16)}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${admin}` },
      });
      expect(revoked.status).toBe(204);
      const since = performance.now();
      expect(await status(a, key), 'the server that revoked it').toBe(401);
      await expectHonouredWithin('the other server', verdict(b, key), since);
      // The key that revoked it still works on both (only the revoked id was forgotten).
      for (const instance of instances) expect(await status(instance, admin)).toBe(200);
    });

    it(`a key revoked by another process (behalf keys revoke) is refused by both within ${STALENESS_BOUND_MS} ms`, async () => {
      const key = await database.createApiKey();
      await warm(key);
      // What `behalf keys revoke` does: its own store over the same database.
      const store = await openStore(database.url);
      try {
        await revokeApiKey(store, key.slice(4, 16));
      } finally {
        await store.close();
      }
      const since = performance.now();
      for (const [i, instance] of instances.entries())
        await expectHonouredWithin(`server ${i + 1}`, verdict(instance, key), since);
    });
  });
}

// describe.runIf, not a plain if: without Postgres these tests are counted as skipped.
describe.runIf(server !== undefined)('on Postgres', () =>
  revocationTests('Postgres', () => createSharedPostgres(server!, 'coherence_keys')),
);
revocationTests('SQLite', () => createSharedSqlite());
