/**
 * The job backends' contract suite (./job-backend-contract.ts), unchanged, on SQLite and on
 * Postgres.
 *
 * Postgres needs a server: BEHALF_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratePostgres, openDatabase, SqliteDatabase, type Database } from '../../src/database/index.js';
import { PostgresJobBackend, SqliteJobBackend, type JobRun } from '../../src/jobs/index.js';
import { PostgresStore, SqliteStore } from '../../src/vault/index.js';
import { waitUntil } from '../support/deadline.js';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';
import { runJobBackendContract, type JobBackendWorld } from './job-backend-contract.js';

const logger = pino({ level: 'silent' });

function jobRun(id: string): JobRun {
  return {
    id,
    name: 'sync',
    sub: 'alice',
    params: {},
    status: 'queued',
    attempts: 0,
    maxAttempts: 5,
    errorCode: null,
    errorMessage: null,
    result: null,
    createdAt: 1,
    updatedAt: 1,
    finishedAt: null,
  };
}

function worldOver(database: Database): JobBackendWorld {
  return {
    store: database.kind === 'sqlite' ? new SqliteStore(database) : new PostgresStore(database),
    makeBackend: (options) =>
      database.kind === 'sqlite'
        ? new SqliteJobBackend(database, { logger, ...options })
        : new PostgresJobBackend(database, { logger, ...options }),
    close: () => database.close(),
  };
}

describe('SQLite', () => {
  let dir: string;
  let counter = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-jobs-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  runJobBackendContract('sqlite', async () =>
    worldOver(await openDatabase(`sqlite:${join(dir, `jobs-${++counter}`, 'behalf.db')}`)),
  );

  it('keeps delivering after another process held the file locked past the busy timeout', async () => {
    const path = join(dir, 'locked', 'behalf.db');
    const database = new SqliteDatabase(path, { busyTimeoutMs: 20 });
    const lines: string[] = [];
    const jobs = new SqliteJobBackend(database, {
      logger: pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }),
      pollIntervalMs: 20,
    });
    const other = new BetterSqlite(path);
    const seen: string[] = [];
    try {
      jobs.start(['sync'], 2, async (runId) => void seen.push(runId));
      // Another process (a backup, `behalf sweep`) takes the write lock and keeps it a while.
      other.prepare('BEGIN IMMEDIATE').run();
      await waitUntil(
        'the workers have met the locked file',
        () => lines.filter((line) => line.includes('database is locked')).length >= 2,
      );
      other.prepare('ROLLBACK').run();
      const run = jobRun('after-the-lock');
      await jobs.insertRun(run);
      await waitUntil('the run is delivered', () => seen.includes(run.id));
      expect(seen).toEqual([run.id]);
    } finally {
      other.close();
      await jobs.stop();
      await database.close();
    }
  });
});

const server = await postgresForTests('job backend on Postgres');

describe.runIf(server !== undefined)('Postgres', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase(server!, 'job_backend');
  });

  afterAll(async () => {
    await db?.drop();
  });

  // Each world a fresh schema (pg-boss's included), migrated as `behalf migrate` does.
  runJobBackendContract('postgres', async () => {
    const url = await db.freshSchema();
    await migratePostgres(url);
    return worldOver(await openDatabase(url));
  });

  it("measures delays on the database's clock: an instance whose clock is off still delivers on time", async () => {
    const url = await db.freshSchema();
    await migratePostgres(url);
    const database = await openDatabase(url);
    const jobs = worldOver(database).makeBackend({ pollIntervalMs: 20 });
    const seen: string[] = [];
    const now = jobRun('now');
    const soon = jobRun('soon');
    try {
      jobs.start(['sync'], 1, async (runId) => void seen.push(runId));
      // This instance's clock runs an hour fast (no NTP here): what it asks for now must run now.
      const realNow = Date.now;
      Date.now = () => realNow() + 3_600_000;
      try {
        await jobs.insertRun(now);
        await jobs.insertRun(soon, 500);
      } finally {
        Date.now = realNow;
      }
      await waitUntil('both runs are delivered', () => seen.length === 2, { timeoutMs: 10_000 });
      expect(seen).toEqual([now.id, soon.id]);
    } finally {
      await jobs.stop();
      await database.close();
    }
  });

  it('a job queue that could not start (the database away for a moment) starts on the next call', async () => {
    const url = await db.freshSchema();
    await migratePostgres(url);
    const database = await openDatabase(url);
    if (database.kind !== 'postgres') throw new Error('expected Postgres');
    // The database answers pg-boss's first statement with a connection failure, then normally.
    let failures = 1;
    const flaky = Object.assign(Object.create(database) as typeof database, {
      executeSql: async (text: string, values?: unknown[]) => {
        if (failures > 0) {
          failures--;
          throw Object.assign(new Error('Connection terminated unexpectedly'), { name: 'Error' });
        }
        return database.executeSql(text, values);
      },
      query: database.query.bind(database),
      transaction: database.transaction.bind(database),
    });
    const jobs = new PostgresJobBackend(flaky, { logger, pollIntervalMs: 20 });
    try {
      const error = await jobs.insertRun(jobRun('first')).then(
        () => undefined,
        (e: unknown) => e as { code?: string; retryable?: boolean },
      );
      expect(error).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
      expect(await jobs.getRun('first')).toBeNull();
      await jobs.insertRun(jobRun('second'));
      expect(await jobs.getRun('second')).toMatchObject({ id: 'second', status: 'queued' });
      expect(await jobs.outstanding()).toBe(1);
    } finally {
      await jobs.stop();
      await database.close();
    }
  });
});
