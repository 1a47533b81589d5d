/**
 * The Postgres store: the contract suite unchanged, then what only Postgres has — migrations that
 * a server checks but never applies, pool and timeout settings, a lost or unreachable server, and
 * several instances (pools) over one database (issue 5).
 *
 * Needs a Postgres server: BEHALF_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import { errorOf } from '../support/errors.js';
import {
  migrateStore,
  openPostgresStore,
  openStore,
  parsePostgresSettings,
  POSTGRES_SCHEMA_VERSION,
  redactPostgresUrl,
  type PostgresStore,
  type SignInWrite,
  type Store,
} from '../../src/vault/index.js';
import {
  closedPort,
  createTestDatabase,
  postgresForTests,
  startTcpProxy,
  withSearchPath,
  type TestDatabase,
} from '../support/postgres.js';
import { profile, runStoreContract } from './store-contract.js';

const server = await postgresForTests('Postgres store');
const CLIENT = 'c.apps.googleusercontent.com';
const T0 = 1_760_000_000_000;

function signIn(sub: string, now: number, overrides: Partial<SignInWrite> = {}): SignInWrite {
  return {
    user: profile(sub),
    clientId: CLIENT,
    scopes: ['openid'],
    refreshTokenCiphertext: randomBytes(40),
    accessTokenCiphertext: randomBytes(40),
    accessTokenExpiresAt: now + 3_600_000,
    now,
    ...overrides,
  };
}

/** A URL with a password in it, pointed at `url`'s server: trust auth ignores the password. */
function withPassword(url: string, password: string): string {
  const parsed = new URL(url);
  parsed.password = password;
  return parsed.href;
}

describe.runIf(server !== undefined)('Postgres', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase(server!, 'store');
  });

  afterAll(async () => {
    await db?.drop();
  });

  /** A fresh schema brought to the current version, as `behalf migrate` does. */
  async function migratedSchema(): Promise<string> {
    const url = await db.freshSchema();
    await migrateStore(url);
    return url;
  }

  runStoreContract('postgres', async () => openStore(await migratedSchema()));

  describe('migrations (behalf migrate)', () => {
    it('applies every migration to an empty schema, then nothing on a second run', async () => {
      const url = await db.freshSchema();
      const first = await migrateStore(url);
      expect(first).toEqual({
        kind: 'postgres',
        target: redactPostgresUrl(url),
        from: 0,
        to: POSTGRES_SCHEMA_VERSION,
        applied: [
          { version: 1, name: 'users, grants, api_keys' },
          { version: 2, name: 'refresh leases' },
          { version: 3, name: 'security events, job runs, job queue' },
          { version: 4, name: 'grant change notifications' },
          { version: 5, name: 'encryption key checks' },
          { version: 6, name: 'webhooks' },
          {
            version: 7,
            name: 'admin console: sessions, sweep runs, last refresh per grant, security event history, API key last use, users by email',
          },
          { version: 8, name: 'grant counts' },
          { version: 9, name: 'refresh token expiry' },
        ],
      });
      const second = await migrateStore(url);
      expect(second).toMatchObject({
        from: POSTGRES_SCHEMA_VERSION,
        to: POSTGRES_SCHEMA_VERSION,
        applied: [],
      });
      const schema = new URL(url).searchParams.get('options')!.replace('-c search_path=', '');
      const { rows } = await db.query(
        `SELECT version, name FROM ${schema}.schema_migrations ORDER BY version`,
      );
      expect(rows).toEqual([
        { version: 1, name: 'users, grants, api_keys' },
        { version: 2, name: 'refresh leases' },
        { version: 3, name: 'security events, job runs, job queue' },
        { version: 4, name: 'grant change notifications' },
        { version: 5, name: 'encryption key checks' },
        { version: 6, name: 'webhooks' },
        {
          version: 7,
          name: 'admin console: sessions, sweep runs, last refresh per grant, security event history, API key last use, users by email',
        },
        { version: 8, name: 'grant counts' },
        { version: 9, name: 'refresh token expiry' },
      ]);
    });

    it('several migrate runs at once apply each migration exactly once', async () => {
      const url = await db.freshSchema();
      const reports = await Promise.all(Array.from({ length: 6 }, () => migrateStore(url)));
      expect(reports.flatMap((r) => r.applied).map((m) => m.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(reports.every((r) => r.to === POSTGRES_SCHEMA_VERSION)).toBe(true);
      const store = await openStore(url);
      await store.close();
    });

    it('a server never migrates: an empty schema stops start-up with CONFIG_INVALID saying to run behalf migrate, and is left untouched', async () => {
      const url = await db.freshSchema();
      const error = await errorOf(openStore(url));
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.reason).toBe('schema_missing');
      expect(error.message).toMatch(/^BEHALF_DATABASE_URL: /);
      expect(error.message).toContain('run `behalf migrate`');
      expect(error.message).toContain(`needs version ${POSTGRES_SCHEMA_VERSION}`);
      const schema = new URL(url).searchParams.get('options')!.replace('-c search_path=', '');
      const { rows } = await db.query(
        'SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1',
        [schema],
      );
      expect(rows[0].n).toBe(0);
    });

    it('refuses to start against an older schema until migrated, and migrate applies only what is missing', async () => {
      const url = await migratedSchema();
      const schema = new URL(url).searchParams.get('options')!.replace('-c search_path=', '');
      await db.query(
        `DROP INDEX ${schema}.grants_by_refresh_expiry; ALTER TABLE ${schema}.grants DROP COLUMN refresh_token_expires_at;
         DELETE FROM ${schema}.schema_migrations WHERE version = 9`,
      );
      const error = await errorOf(openStore(url));
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.reason).toBe('schema_too_old');
      expect(error.message).toMatch(
        /^BEHALF_DATABASE_URL: .*is at schema version 8, older than this behalf needs.*run `behalf migrate`/,
      );
      expect((await migrateStore(url)).applied).toEqual([{ version: 9, name: 'refresh token expiry' }]);
      const store = await openStore(url);
      await store.close();
    });

    it('refuses a schema newer than it knows, at start-up and in migrate', async () => {
      const url = await migratedSchema();
      const schema = new URL(url).searchParams.get('options')!.replace('-c search_path=', '');
      await db.query(
        `INSERT INTO ${schema}.schema_migrations (version, name) VALUES ($1, 'from the future')`,
        [POSTGRES_SCHEMA_VERSION + 1],
      );
      for (const attempt of [openStore, migrateStore]) {
        const error = await errorOf(attempt(url));
        expect(error.code).toBe('CONFIG_INVALID');
        expect(error.reason).toBe('schema_too_new');
        expect(error.message).toMatch(/^BEHALF_DATABASE_URL: /);
        expect(error.message).toContain(
          `version ${POSTGRES_SCHEMA_VERSION + 1}, newer than this behalf knows (${POSTGRES_SCHEMA_VERSION})`,
        );
        expect(error.message).toContain('behalf migrate');
      }
    });

    it("refuses another tool's schema_migrations table rather than guessing", async () => {
      const url = await db.freshSchema();
      const schema = new URL(url).searchParams.get('options')!.replace('-c search_path=', '');
      await db.query(
        `CREATE TABLE ${schema}.schema_migrations (version BIGINT PRIMARY KEY, dirty BOOLEAN NOT NULL)`,
      );
      for (const attempt of [openStore, migrateStore]) {
        const error = await errorOf(attempt(url));
        expect(error.code).toBe('CONFIG_INVALID');
        expect(error.reason).toBe('foreign_schema');
      }
    });

    it('a search_path schema that does not exist is a CONFIG_INVALID saying to create it', async () => {
      const error = await errorOf(migrateStore(withSearchPath(db.url, 'no_such_schema')));
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.message).toMatch(/^BEHALF_DATABASE_URL: .*schema .* does not exist/);
    });
  });

  describe('settings from the URL', () => {
    it('reads pool_max, connect_timeout, statement_timeout and pool_idle_timeout_ms, and passes the rest to pg', () => {
      const settings = parsePostgresSettings(
        'postgres://behalf:pw-1@db.internal:6432/behalf?sslmode=require&pool_max=25&connect_timeout=2.5&statement_timeout=4000&pool_idle_timeout_ms=0&application_name=api',
      );
      expect(settings).toEqual({
        connectionString:
          'postgres://behalf:pw-1@db.internal:6432/behalf?sslmode=require&application_name=api',
        target: 'postgres://behalf@db.internal:6432/behalf',
        poolMax: 25,
        connectTimeoutMs: 2500,
        statementTimeoutMs: 4000,
        poolIdleTimeoutMs: 0,
      });
    });

    it('has defaults, takes options from code, and lets the URL win over them', () => {
      expect(parsePostgresSettings('postgres://h/db')).toMatchObject({
        poolMax: 10,
        connectTimeoutMs: 10_000,
        statementTimeoutMs: 10_000,
        poolIdleTimeoutMs: 30_000,
      });
      expect(parsePostgresSettings('postgres://h/db', { poolMax: 3, statementTimeoutMs: 0 })).toMatchObject({
        poolMax: 3,
        statementTimeoutMs: 0,
      });
      expect(parsePostgresSettings('postgres://h/db?pool_max=7', { poolMax: 3 })).toMatchObject({
        poolMax: 7,
      });
    });

    it.each([
      ['pool_max=0', /pool_max parameter must be a whole number of connections from 1 to 1000/],
      ['pool_max=many', /pool_max parameter/],
      ['connect_timeout=-1', /connect_timeout parameter must be a number of seconds/],
      ['statement_timeout=10s', /statement_timeout parameter must be a whole number of milliseconds/],
      ['pool_idle_timeout_ms=1.5', /pool_idle_timeout_ms parameter/],
    ])('refuses %s with a CONFIG_INVALID naming the setting, without echoing the URL', (query, problem) => {
      let error: unknown;
      try {
        parsePostgresSettings(`postgres://behalf:pw-secret-77@h/db?${query}`);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(BehalfError);
      expect((error as BehalfError).code).toBe('CONFIG_INVALID');
      expect((error as BehalfError).message).toMatch(/^BEHALF_DATABASE_URL: /);
      expect((error as BehalfError).message).toMatch(problem);
      expect((error as BehalfError).message).not.toContain('pw-secret-77');
    });

    it('redacts the password and the whole query string from URLs it prints', () => {
      expect(
        redactPostgresUrl('postgres://behalf:hunter2@db:5432/behalf?password=hunter3&sslpassword=x'),
      ).toBe('postgres://behalf@db:5432/behalf');
      expect(redactPostgresUrl('postgresql://db/behalf')).toBe('postgresql://db/behalf');
    });

    it('the pool opens at most pool_max connections, named behalf unless the URL names them', async () => {
      const url = await migratedSchema();
      const name = `behalf_pool_${randomBytes(3).toString('hex')}`;
      const named = new URL(url);
      named.searchParams.set('pool_max', '2');
      named.searchParams.set('application_name', name);
      const store = await openStore(named.href);
      try {
        await Promise.all(Array.from({ length: 30 }, (_, i) => store.getUser(String(i))));
        const { rows } = await db.query(
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
          [name],
        );
        expect(rows[0].n).toBeGreaterThan(0);
        expect(rows[0].n).toBeLessThanOrEqual(2);
        expect((store as PostgresStore).settings()).toMatchObject({
          poolMax: 2,
          schemaVersion: POSTGRES_SCHEMA_VERSION,
        });
      } finally {
        await store.close();
      }
      const plain = await openStore(url);
      try {
        await plain.getUser('x');
        const { rows } = await db.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'behalf' AND datname = $1",
          [db.name],
        );
        expect(rows[0].n).toBeGreaterThan(0);
      } finally {
        await plain.close();
      }
    });

    it('the hot statements are prepared once per connection and then reused, by name', async () => {
      const url = new URL(await migratedSchema());
      url.searchParams.set('pool_max', '1');
      const store = (await openStore(url.href)) as PostgresStore;
      try {
        await store.saveSignIn(signIn('hot', T0));
        for (let i = 0; i < 3; i++) {
          expect(await store.acquireRefreshLease('hot', CLIENT, 'h', 10_000)).toBe(true);
          expect(await store.renewRefreshLease('hot', CLIENT, 'h', 10_000)).toBe(true);
          const grant = (await store.getGrant('hot', CLIENT))!;
          const write = { accessTokenCiphertext: randomBytes(40), accessTokenExpiresAt: T0 + 1, now: T0 + 1 };
          expect(await store.saveAccessToken('hot', CLIENT, write, grant.version)).toBe(true);
          expect(await store.saveAccessToken('hot', CLIENT, { ...write, releaseLeaseOf: 'h' })).toBe(true);
          const refreshed = { at: T0 + i, outcome: 'ok', reason: null };
          expect(
            await store.saveAccessToken('hot', CLIENT, { ...write, releaseLeaseOf: 'h', refreshed }),
          ).toBe(true);
          await store.releaseRefreshLease('hot', CLIENT, 'h');
          await store.recordRefresh('hot', CLIENT, { at: T0 + i, outcome: 'ok', reason: null });
          expect(await store.findApiKey('none')).toBeNull();
        }
        // One connection, so this session is the one that ran every statement above.
        const { rows } = await store.database.query<{ name: string }>(
          "SELECT name FROM pg_prepared_statements WHERE name LIKE 'behalf\\_%' ORDER BY name",
        );
        expect(rows.map((row) => row.name)).toEqual([
          'behalf_find_api_key',
          'behalf_get_grant',
          'behalf_record_refresh',
          'behalf_release_lease',
          'behalf_renew_lease',
          'behalf_save_access_token',
          'behalf_save_access_token_releasing_lease',
          'behalf_save_refreshed_access_token',
          'behalf_take_lease',
        ]);
        expect((await store.getGrant('hot', CLIENT))?.version).toBe(1 + 3 * 3);
      } finally {
        await store.close();
      }
    });

    it('statement_timeout bounds a call stuck behind a lock: a retryable STORE_UNAVAILABLE, then the call works', async () => {
      const url = await migratedSchema();
      const schema = new URL(url).searchParams.get('options')!.replace('-c search_path=', '');
      const timed = new URL(url);
      timed.searchParams.set('statement_timeout', '300');
      const store = await openStore(timed.href);
      await store.saveSignIn(signIn('locked', T0));
      const holder = new pg.Client({ connectionString: url });
      holder.on('error', () => undefined);
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query(`SELECT 1 FROM ${schema}.grants WHERE sub = 'locked' FOR UPDATE`);
        const started = Date.now();
        const error = await errorOf(store.setGrantStatus('locked', CLIENT, 'revoked', T0 + 1));
        expect(Date.now() - started).toBeLessThan(5_000);
        expect(error.code).toBe('STORE_UNAVAILABLE');
        expect(error.retryable).toBe(true);
        expect(error.message).toContain('57014');
        await holder.query('ROLLBACK');
        await store.setGrantStatus('locked', CLIENT, 'revoked', T0 + 1);
        expect((await store.getGrant('locked', CLIENT))?.status).toBe('revoked');
      } finally {
        await holder.end();
        await store.close();
      }
    });
  });

  describe('an unreachable or lost server', () => {
    it('unreachable at start-up: one STORE_UNAVAILABLE naming BEHALF_DATABASE_URL, without the password', async () => {
      const url = `postgres://behalf:pw-Xy7-secret@127.0.0.1:${await closedPort()}/behalf?password=pw-q-secret`;
      for (const attempt of [openStore, migrateStore]) {
        const error = await errorOf(attempt(url));
        expect(error.code).toBe('STORE_UNAVAILABLE');
        expect(error.retryable).toBe(true);
        expect(error.message).toMatch(
          /^BEHALF_DATABASE_URL: Postgres at postgres:\/\/behalf@127\.0\.0\.1:\d+\/behalf cannot be reached \(ECONNREFUSED\)/,
        );
        expect(error.message).not.toContain('pw-Xy7-secret');
        expect(error.message).not.toContain('pw-q-secret');
        expect(JSON.stringify(error.toJSON())).not.toContain('secret');
      }
    });

    it('a database that does not exist is a CONFIG_INVALID saying to create it, without the password', async () => {
      const url = withPassword(
        `${server!.replace(/\/[^/?]*(\?.*)?$/, '')}/behalf_no_such_db_${randomBytes(3).toString('hex')}`,
        'pw-Db-secret',
      );
      const error = await errorOf(openStore(url));
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.message).toMatch(/^BEHALF_DATABASE_URL: .*the database does not exist \(3D000\)/);
      expect(error.message).not.toContain('pw-Db-secret');
    });

    it('a server that goes away mid-run gives retryable STORE_UNAVAILABLE without the password, and the store recovers when it is back', async () => {
      const url = await migratedSchema();
      const proxy = await startTcpProxy(url);
      const store = await openStore(withPassword(proxy.via(url), 'pw-Lost-secret'));
      try {
        await store.saveSignIn(signIn('lost', T0));
        // Connections cut under the pool (a restart): the next calls fail cleanly or reconnect.
        proxy.cut();
        await proxy.down();
        const failures = await Promise.all(
          Array.from({ length: 5 }, () => errorOf(store.getGrant('lost', CLIENT))),
        );
        for (const error of failures) {
          expect(error.code).toBe('STORE_UNAVAILABLE');
          expect(error.retryable).toBe(true);
          expect(error.message).not.toContain('pw-Lost-secret');
          expect(error.message).not.toContain('127.0.0.1');
        }
        const write = await errorOf(store.saveSignIn(signIn('lost', T0 + 1)));
        expect(write.code).toBe('STORE_UNAVAILABLE');
        await proxy.up();
        expect(await store.getGrant('lost', CLIENT)).toMatchObject({ sub: 'lost', version: 1 });
        // A cut in the middle of use, with the server still there: callers see STORE_UNAVAILABLE at worst.
        const calls = Array.from({ length: 20 }, (_, i) =>
          store.saveSignIn(signIn('lost', T0 + 10 + i)).then(
            () => 'ok',
            (e: unknown) => e,
          ),
        );
        proxy.cut();
        for (const outcome of await Promise.all(calls)) {
          if (outcome !== 'ok') expect(outcome).toMatchObject({ code: 'STORE_UNAVAILABLE' });
        }
        await expect(store.saveSignIn(signIn('lost', T0 + 100))).resolves.toBeDefined();
      } finally {
        await store.close();
        await proxy.close();
      }
    });
  });

  describe('several instances over one database', () => {
    let url: string;
    let a: Store;
    let b: Store;

    beforeAll(async () => {
      url = await migratedSchema();
      [a, b] = await Promise.all([openPostgresStore(url), openPostgresStore(url)]);
    });

    afterAll(async () => {
      await a?.close();
      await b?.close();
    });

    it('racing sign-ins of one user on two instances leave one grant holding the newest refresh token', async () => {
      const writes = Array.from({ length: 40 }, (_, i) => signIn('race', T0 + i));
      // Oldest last: every late writer carries an older refresh token than what is stored.
      const order = writes.map((_, i) => i).sort((x, y) => ((x * 7919) % 40) - ((y * 7919) % 40));
      await Promise.all(order.map((i, n) => (n % 2 === 0 ? a : b).saveSignIn(writes[i]!)));
      const grant = await a.getGrant('race', CLIENT);
      const newest = writes.at(-1)!;
      expect(grant?.refreshTokenCiphertext).toEqual(newest.refreshTokenCiphertext);
      expect(grant?.refreshTokenIssuedAt).toBe(newest.now);
      expect(grant?.version).toBe(40);
      expect(grant?.status).toBe('active');
      expect(await b.getGrant('race', CLIENT)).toEqual(grant);
    });

    it('refresh leases are exclusive across instances, whatever their clocks', async () => {
      await a.saveSignIn(signIn('lease', T0));
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          (i % 2 === 0 ? a : b).acquireRefreshLease('lease', CLIENT, `holder-${i}`, 10_000),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('a user deleted on one instance takes their leases along', async () => {
      await a.saveSignIn(signIn('gone', T0));
      expect(await a.acquireRefreshLease('gone', CLIENT, 'x', 60_000)).toBe(true);
      expect(await b.deleteUser('gone')).toBe(true);
      expect(await a.acquireRefreshLease('gone', CLIENT, 'y', 60_000)).toBe(false);
      await b.saveSignIn(signIn('gone', T0 + 1));
      expect(await a.acquireRefreshLease('gone', CLIENT, 'y', 60_000)).toBe(true);
    });
  });
});
