import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BehalfError } from '../../src/errors.js';
import { errorOf } from '../support/errors.js';
import {
  openSqliteStore,
  openStore,
  parseDatabaseUrl,
  SQLITE_SCHEMA_VERSION,
} from '../../src/vault/index.js';
import { profile, runStoreContract } from './store-contract.js';

let dir: string;
let counter = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'behalf-sqlite-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const nextPath = () => join(dir, `store-${++counter}`, 'behalf.db');

runStoreContract('sqlite file', () => openSqliteStore(nextPath()));
runStoreContract('sqlite :memory:', () => openSqliteStore(':memory:'));

function modeOf(info: { mode: number }): number {
  return info.mode & 0o777;
}

const signIn = (sub: string, now: number) => ({
  user: profile(sub),
  clientId: 'c.apps.googleusercontent.com',
  scopes: ['openid'],
  refreshTokenCiphertext: randomBytes(40),
  accessTokenCiphertext: randomBytes(40),
  accessTokenExpiresAt: now + 3_600_000,
  now,
});

describe('SqliteStore on disk', () => {
  it.skipIf(process.platform === 'win32')(
    'creates its folder 0700 and the file 0600 on first run, and the WAL files follow',
    async () => {
      const path = join(dir, 'fresh', 'nested', 'behalf.db');
      const store = await openSqliteStore(path);
      try {
        await store.saveSignIn(signIn('1', 1));
        expect(modeOf(await stat(path))).toBe(0o600);
        expect(modeOf(await stat(join(dir, 'fresh', 'nested')))).toBe(0o700);
        expect(modeOf(await stat(join(dir, 'fresh')))).toBe(0o700);
        expect(modeOf(await stat(`${path}-wal`))).toBe(0o600);
        expect(modeOf(await stat(`${path}-shm`))).toBe(0o600);
      } finally {
        await store.close();
      }
    },
  );

  it('runs in WAL mode with synchronous=FULL, a busy timeout and foreign keys', async () => {
    const store = await openSqliteStore(nextPath());
    try {
      expect(store.settings()).toEqual({
        journalMode: 'wal',
        synchronous: 2,
        busyTimeoutMs: 5000,
        foreignKeys: true,
        schemaVersion: SQLITE_SCHEMA_VERSION,
      });
    } finally {
      await store.close();
    }
  });

  it('stays synchronous=FULL around the access-token and lease writes, which skip the fsync', async () => {
    const store = await openSqliteStore(nextPath());
    try {
      await store.saveSignIn(signIn('8', 1));
      expect(await store.acquireRefreshLease('8', 'c.apps.googleusercontent.com', 'me', 1000)).toBe(true);
      expect(store.settings().synchronous).toBe(2);
      const write = { accessTokenCiphertext: randomBytes(40), accessTokenExpiresAt: 7_200_000, now: 2 };
      expect(await store.saveAccessToken('8', 'c.apps.googleusercontent.com', write)).toBe(true);
      await store.releaseRefreshLease('8', 'c.apps.googleusercontent.com', 'me');
      expect(store.settings().synchronous).toBe(2); // back to FULL after each of them
    } finally {
      await store.close();
    }
  });

  it('keeps what it stored across a reopen, and does not apply migrations twice', async () => {
    const path = nextPath();
    const first = await openSqliteStore(path);
    await first.saveSignIn(signIn('7', 1000));
    await first.close();
    const second = await openSqliteStore(path);
    try {
      expect(await second.getUser('7')).toMatchObject({ sub: '7', createdAt: 1000 });
    } finally {
      await second.close();
    }
    const db = new Database(path, { readonly: true });
    try {
      expect(db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all()).toEqual([
        { version: 1, name: 'users, grants, api_keys' },
        { version: 2, name: 'refresh leases' },
        { version: 3, name: 'security events, job runs, job queue' },
        { version: 4, name: 'grant change log' },
        { version: 5, name: 'encryption key checks' },
        { version: 6, name: 'webhooks' },
        {
          version: 7,
          name: 'admin console: sessions, sweep runs, last refresh per grant, security event history, API key last use, users by email',
        },
        { version: 8, name: 'grant counts' },
        { version: 9, name: 'refresh token expiry' },
      ]);
    } finally {
      db.close();
    }
  });

  it('records migration times from the clock it is given', async () => {
    const path = nextPath();
    const store = await openSqliteStore(path, { clock: { now: () => 42 } });
    await store.close();
    const db = new Database(path, { readonly: true });
    try {
      expect(db.prepare('SELECT applied_at FROM schema_migrations').pluck().get()).toBe(42);
    } finally {
      db.close();
    }
  });

  it('refuses a database whose schema is newer than it knows, with a clear message', async () => {
    const path = nextPath();
    await (await openSqliteStore(path)).close();
    const db = new Database(path);
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
      SQLITE_SCHEMA_VERSION + 1,
      'from the future',
      0,
    );
    db.close();
    const error = await errorOf(openSqliteStore(path));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('BEHALF_DATABASE_URL');
    expect(error.message).toContain(
      `version ${SQLITE_SCHEMA_VERSION + 1}, newer than this behalf knows (${SQLITE_SCHEMA_VERSION})`,
    );
  });

  it('two stores opening one new file at once both come up on one schema', async () => {
    const path = nextPath();
    const [a, b] = await Promise.all([openSqliteStore(path), openSqliteStore(path)]);
    await a.saveSignIn(signIn('8', 1));
    expect(await b.getUser('8')).not.toBeNull();
    await a.close();
    await b.close();
  });

  it('a path that is a folder is a configuration error naming BEHALF_DATABASE_URL', async () => {
    const folder = join(dir, 'a-folder');
    await mkdir(folder, { recursive: true });
    const error = await errorOf(openSqliteStore(folder));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toMatch(/^BEHALF_DATABASE_URL: .*a-folder is a folder/);
  });

  it('a file that is not a SQLite database is a configuration error', async () => {
    const path = join(dir, 'not-a-db.db');
    await writeFile(
      path,
      'this is not a database, it is a text file that is long enough to have a header'.repeat(20),
    );
    const error = await errorOf(openSqliteStore(path));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('BEHALF_DATABASE_URL');
    expect(error.message).toContain('not a SQLite database');
  });

  it('a path under a file is a configuration error', async () => {
    const file = join(dir, 'plain-file');
    await writeFile(file, 'x');
    const error = await errorOf(openSqliteStore(join(file, 'behalf.db')));
    expect(['CONFIG_INVALID', 'STORE_UNAVAILABLE']).toContain(error.code);
    expect(error.message).toContain('BEHALF_DATABASE_URL');
  });

  it('a write blocked by another process past the busy timeout is a retryable STORE_UNAVAILABLE', async () => {
    const path = nextPath();
    const store = await openSqliteStore(path, { busyTimeoutMs: 50 });
    const other = new Database(path);
    try {
      other.prepare('BEGIN IMMEDIATE').run();
      const error = await errorOf(store.saveSignIn(signIn('9', 1)));
      expect(error.code).toBe('STORE_UNAVAILABLE');
      expect(error.retryable).toBe(true);
      other.prepare('ROLLBACK').run();
      await expect(store.saveSignIn(signIn('9', 1))).resolves.toBeDefined();
    } finally {
      other.close();
      await store.close();
    }
  });
});

describe('parseDatabaseUrl', () => {
  it('reads sqlite:PATH relative to the working directory, or absolute', () => {
    expect(parseDatabaseUrl('sqlite:.behalf/behalf.db', '/srv/app')).toEqual({
      kind: 'sqlite',
      path: '/srv/app/.behalf/behalf.db',
    });
    expect(parseDatabaseUrl('sqlite:data.db', '/srv/app')).toEqual({
      kind: 'sqlite',
      path: '/srv/app/data.db',
    });
    expect(parseDatabaseUrl('sqlite:/var/lib/behalf/behalf.db', '/srv/app')).toEqual({
      kind: 'sqlite',
      path: '/var/lib/behalf/behalf.db',
    });
    expect(parseDatabaseUrl('sqlite:///var/lib/behalf/behalf.db', '/srv/app')).toEqual({
      kind: 'sqlite',
      path: '/var/lib/behalf/behalf.db',
    });
    expect(parseDatabaseUrl('  sqlite:data.db  ', '/srv/app')).toEqual({
      kind: 'sqlite',
      path: '/srv/app/data.db',
    });
  });

  it('reads sqlite::memory: for tests', () => {
    expect(parseDatabaseUrl('sqlite::memory:')).toEqual({ kind: 'sqlite', path: ':memory:' });
  });

  it('recognises postgres:// and postgresql://', () => {
    expect(parseDatabaseUrl('postgres://behalf@127.0.0.1:5432/behalf')).toEqual({
      kind: 'postgres',
      url: 'postgres://behalf@127.0.0.1:5432/behalf',
    });
    expect(parseDatabaseUrl('postgresql://db.internal/behalf')).toEqual({
      kind: 'postgres',
      url: 'postgresql://db.internal/behalf',
    });
  });

  it.each([
    ['', /not a database URL/],
    ['behalf.db', /not a database URL/],
    ['mysql://root:hunter2@localhost/db', /unsupported scheme 'mysql:'/],
    ['sqlite:', /no SQLite file path/],
    ['sqlite://host/db.sqlite', /names a host/],
  ])('refuses %j with a CONFIG_INVALID naming the setting', (url, problem) => {
    let error: unknown;
    try {
      parseDatabaseUrl(url);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BehalfError);
    expect((error as BehalfError).code).toBe('CONFIG_INVALID');
    expect((error as BehalfError).message).toMatch(/^BEHALF_DATABASE_URL: /);
    expect((error as BehalfError).message).toMatch(problem);
    expect((error as BehalfError).message).not.toContain('hunter2');
  });

  it('never echoes a postgres URL, which may carry a password', () => {
    expect(() => parseDatabaseUrl('postgres://user:s3cret-pw@')).toThrow(BehalfError);
    try {
      parseDatabaseUrl('postgres://user:s3cret-pw@');
    } catch (error) {
      expect((error as Error).message).not.toContain('s3cret-pw');
    }
  });
});

describe('openStore', () => {
  it('opens sqlite URLs', async () => {
    const store = await openStore(`sqlite:${nextPath()}`);
    expect(store.kind).toBe('sqlite');
    await store.close();
  });

  it('resolves a relative path against the given working directory', async () => {
    const store = await openStore('sqlite:rel/behalf.db', { cwd: dir });
    await store.close();
    expect((await stat(join(dir, 'rel', 'behalf.db'))).isFile()).toBe(true);
  });

  it('hands postgres URLs to the Postgres backend, never echoing the password (see postgres-store.test.ts)', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = server.address() as { port: number };
        server.close(() => resolve(free));
      });
    });
    const error = await errorOf(openStore(`postgres://behalf:pw-9f8e7d@127.0.0.1:${port}/behalf`));
    expect(error.code).toBe('STORE_UNAVAILABLE');
    expect(error.message).toMatch(
      /^BEHALF_DATABASE_URL: Postgres at postgres:\/\/behalf@127\.0\.0\.1:\d+\/behalf cannot be reached/,
    );
    expect(error.message).not.toContain('pw-9f8e7d');
  });
});
