import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  postgresForTests,
  startTcpProxy,
  type TcpProxy,
  type TestDatabase,
} from '../support/postgres.js';
import { startHarness, type Harness } from '../support/harness.js';
import { migratePostgres } from '../../src/vault/index.js';

/** Issue 12, point 1: /healthz while the process serves, /readyz only when it can do its work. */

interface Readyz {
  status: string;
  checks: Record<string, string>;
}

async function readyz(h: Harness): Promise<{ status: number; body: Readyz; cacheControl: string | null }> {
  const response = await fetch(`${h.url}/readyz`);
  return {
    status: response.status,
    body: (await response.json()) as Readyz,
    cacheControl: response.headers.get('cache-control'),
  };
}

const READY = { database: 'ok', schema: 'ok', google_discovery: 'ok', google_keys: 'ok' };

describe('probes', () => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  it('/healthz and /readyz answer without a key; ready once the database, schema and Google are all there', async () => {
    h = await startHarness();
    const health = await fetch(`${h.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await readyz(h);
    expect(ready).toEqual({
      status: 200,
      body: { status: 'ready', checks: READY },
      cacheControl: 'no-store',
    });
  });

  it("is unready while Google's signing keys cannot be loaded, and ready once they can", async () => {
    h = await startHarness();
    // Nothing has needed the keys yet: the probe loads them, and Google fails.
    await h.control('POST', '/emulator/faults', { path: '/oauth2/v3/certs', status: 503, count: 10 });
    const unready = await readyz(h);
    expect(unready.status).toBe(503);
    expect(unready.body).toEqual({
      status: 'unready',
      checks: { ...READY, google_keys: 'not loaded: Google did not answer' },
    });
    // A failed load is not retried by probes for 5 s (a public endpoint must not drive calls to Google).
    const statsBefore = await h.control<{ faults_served: number }>('GET', '/emulator/stats');
    expect((await readyz(h)).status).toBe(503);
    expect((await h.control<{ faults_served: number }>('GET', '/emulator/stats')).faults_served).toBe(
      statsBefore.faults_served,
    );
    await h.control('DELETE', '/emulator/faults');
    h.clock.advance(5);
    expect((await readyz(h)).body).toEqual({ status: 'ready', checks: READY });
  });

  it('reports a schema migrated by a newer behalf, naming no database', async () => {
    h = await startHarness();
    const { database } = h.runtime;
    const version = await database.schemaVersion();
    if (database.kind === 'sqlite') {
      database.connection
        .prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', 0)")
        .run(version + 1);
    } else {
      await database.query("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')", [
        version + 1,
      ]);
    }
    const { status, body } = await readyz(h);
    expect(status).toBe(503);
    expect(body.checks).toEqual({
      ...READY,
      schema: `at version ${version + 1}; this behalf needs ${version}`,
    });
    expect(JSON.stringify(body)).not.toMatch(/sqlite:|postgres:|behalf\.db|127\.0\.0\.1/);
  });

  it('reports a closed database on the very next check', async () => {
    h = await startHarness();
    expect((await readyz(h)).status).toBe(200);
    await h.runtime.database.close();
    const { status, body } = await readyz(h);
    expect(status).toBe(503);
    expect(body.checks).toEqual({
      ...READY,
      database: 'not answering',
      schema: 'unknown: the database is not answering',
    });
    // Liveness is about the process, not its dependencies.
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });
});

const server = await postgresForTests('readiness on a stopped Postgres');

describe.runIf(server !== undefined)('probes on Postgres', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let h: Harness;
  beforeAll(async () => {
    db = await createTestDatabase(server!, 'readyz');
    await migratePostgres(db.url);
    proxy = await startTcpProxy(db.url);
    h = await startHarness({ env: { BEHALF_DATABASE_URL: proxy.via(db.url) } });
  });
  afterAll(async () => {
    await h?.close();
    await proxy?.close();
    await db?.drop();
  });

  it('a stopped database shows on the next check, and recovery on the one after it is back', async () => {
    expect((await readyz(h)).body.status).toBe('ready');
    await proxy.down();
    const stopped = await readyz(h);
    expect(stopped.status).toBe(503);
    expect(stopped.body.checks.database).toBe('not answering');
    expect(JSON.stringify(stopped.body)).not.toContain(String(proxy.port));
    await proxy.up();
    expect((await readyz(h)).body).toEqual({ status: 'ready', checks: READY });
  });
});
