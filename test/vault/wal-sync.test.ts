import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteDatabase } from '../../src/database/sqlite.js';
import { WalSync } from '../../src/database/wal-sync.js';

/** A sync the test finishes by hand, and the order things happened in. */
function controlledSyncs() {
  const events: string[] = [];
  const pending: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  const wal = new WalSync(
    () =>
      new Promise<void>((resolve, reject) => {
        events.push(`sync ${pending.length + 1} started`);
        pending.push({ resolve, reject });
      }),
  );
  const track = (label: string, promise: Promise<void>) =>
    promise.then(
      () => events.push(`${label} done`),
      (error: Error) => events.push(`${label} failed: ${error.message}`),
    );
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  return { wal, events, pending, track, settle };
}

describe('WalSync (group commit of the SQLite WAL)', () => {
  it('starts a sync at once when none runs, and answers when it finishes', async () => {
    const { wal, events, pending, track, settle } = controlledSyncs();
    void track('a', wal.flush());
    expect(events).toEqual(['sync 1 started']);
    await settle();
    expect(events).toEqual(['sync 1 started']); // not before the sync finished
    pending[0]!.resolve();
    await settle();
    expect(events).toEqual(['sync 1 started', 'a done']);
    expect(wal.count).toBe(1);
  });

  it('makes callers that come while a sync runs wait for the next one, which they all share', async () => {
    const { wal, events, pending, track, settle } = controlledSyncs();
    void track('a', wal.flush());
    // b, c and d committed after sync 1 started: sync 1 may not hold their frames.
    void track('b', wal.flush());
    void track('c', wal.flush());
    void track('d', wal.flush());
    await settle();
    expect(events).toEqual(['sync 1 started']);
    pending[0]!.resolve();
    await settle();
    expect(events).toEqual(['sync 1 started', 'a done', 'sync 2 started']);
    // e comes while sync 2 runs: it waits for sync 3, not for sync 2.
    void track('e', wal.flush());
    pending[1]!.resolve();
    await settle();
    expect(events).toEqual([
      'sync 1 started',
      'a done',
      'sync 2 started',
      'sync 3 started', // for e, as soon as sync 2 finished
      'b done',
      'c done',
      'd done',
    ]);
    pending[2]!.resolve();
    await settle();
    expect(events.at(-1)).toBe('e done');
    expect(wal.count).toBe(3);
  });

  it('fails the callers of a failed sync only, and still runs the next one', async () => {
    const { wal, events, pending, track, settle } = controlledSyncs();
    void track('a', wal.flush());
    void track('b', wal.flush());
    pending[0]!.reject(new Error('EIO'));
    await settle();
    expect(events).toEqual(['sync 1 started', 'a failed: EIO', 'sync 2 started']);
    pending[1]!.resolve();
    await settle();
    expect(events.at(-1)).toBe('b done');
    // Nothing runs now: the next caller starts a sync of its own.
    void track('c', wal.flush());
    expect(events.at(-1)).toBe('sync 3 started');
    pending[2]!.resolve();
    await settle();
    expect(events.at(-1)).toBe('c done');
  });

  it('settle() waits for the sync in flight and the one queued after it', async () => {
    const { wal, pending, settle } = controlledSyncs();
    void wal.flush();
    void wal.flush().catch(() => undefined);
    let settled = false;
    void wal.settle().then(() => (settled = true));
    pending[0]!.resolve();
    await settle();
    expect(settled).toBe(false);
    pending[1]!.reject(new Error('EIO'));
    await settle();
    expect(settled).toBe(true);
  });
});

describe('SqliteDatabase transactions and the WAL sync', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-wal-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const open = (name: string) => {
    const database = new SqliteDatabase(join(dir, name));
    database.connection.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    return database;
  };
  /** Frames in the write-ahead log: a commit writes each page it changed once. */
  const walFrames = (database: SqliteDatabase) =>
    (database.connection.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number }>)[0]!.log;
  /** `body` on a new database with table t, closed after. */
  const withDatabase = async (name: string, body: (database: SqliteDatabase) => Promise<void>) => {
    const database = open(name);
    try {
      await body(database);
    } finally {
      await database.close();
    }
  };

  it('syncs the WAL before a transaction resolves; the transactions of one tick commit together and share one sync', () =>
    withDatabase('group.db', async (database) => {
      const insert = database.connection.prepare('INSERT INTO t (v) VALUES (?)');
      const before = database.walSyncs;
      await database.transaction(() => insert.run('one'));
      expect(database.walSyncs).toBe(before + 1);

      database.connection.pragma('wal_checkpoint(TRUNCATE)');
      const writes = Array.from({ length: 50 }, (_, i) => database.transaction(() => insert.run(`v${i}`)));
      await Promise.all(writes);
      expect(database.walSyncs).toBe(before + 2);
      expect(walFrames(database)).toBe(1); // one commit: table t's page written once
      expect(database.connection.prepare('SELECT COUNT(*) AS n FROM t').get()).toEqual({ n: 51 });
      // The connection stays at FULL for writes outside transactions.
      expect(database.settings().synchronous).toBe(2);
    }));

  it('in one commit with unsynced writes: those answer at the commit, the synced ones after the sync', () =>
    withDatabase('mixed.db', async (database) => {
      const insert = database.connection.prepare('INSERT INTO t (v) VALUES (?)');
      const before = database.walSyncs;
      const answered: string[] = [];
      const note = (what: string) => () => answered.push(`${what} after ${database.walSyncs - before} syncs`);
      await Promise.all([
        database.transaction(() => insert.run('synced')).then(note('synced')),
        database.runUnsynced(() => insert.run('unsynced')).then(note('unsynced')),
      ]);
      expect(answered).toEqual(['unsynced after 0 syncs', 'synced after 1 syncs']);
    }));

  it('does not sync for a transaction that failed, and rolls it back', () =>
    withDatabase('failed.db', async (database) => {
      const insert = database.connection.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
      await database.transaction(() => insert.run(1, 'kept'));
      const before = database.walSyncs;
      await expect(
        database.transaction(() => {
          insert.run(2, 'rolled back');
          insert.run(1, 'duplicate');
        }),
      ).rejects.toMatchObject({ code: 'INTERNAL' });
      expect(database.walSyncs).toBe(before);
      expect(database.connection.prepare('SELECT id, v FROM t').all()).toEqual([{ id: 1, v: 'kept' }]);
    }));

  it('runs inside a transaction already open (as a savepoint), leaving the commit to the outer one', () =>
    withDatabase('nested.db', async (database) => {
      const insert = database.connection.prepare('INSERT INTO t (v) VALUES (?)');
      const inner: Array<Promise<unknown>> = [];
      const before = database.walSyncs;
      await database.transaction(() => {
        insert.run('outer');
        inner.push(database.transaction(() => insert.run('inner')));
        inner.push(database.runUnsynced(() => insert.run('unsynced')));
      });
      await Promise.all(inner);
      expect(database.walSyncs).toBe(before + 1); // the outer commit's sync, and no other
      expect(database.connection.prepare('SELECT v FROM t ORDER BY id').all()).toEqual([
        { v: 'outer' },
        { v: 'inner' },
        { v: 'unsynced' },
      ]);
      expect(database.settings().synchronous).toBe(2);
    }));

  it('on close, commits the writes still queued, of both kinds, and waits for their sync', async () => {
    const database = open('close.db');
    const insert = database.connection.prepare('INSERT INTO t (v) VALUES (?)');
    const synced = database.transaction(() => insert.run('synced'));
    const unsynced = database.runUnsynced(() => insert.run('unsynced'));
    await database.close();
    await expect(synced).resolves.toMatchObject({ changes: 1 });
    await expect(unsynced).resolves.toMatchObject({ changes: 1 });
    expect(database.open).toBe(false);
    const reopened = new SqliteDatabase(join(dir, 'close.db'));
    try {
      expect(reopened.connection.prepare('SELECT v FROM t ORDER BY id').pluck().all()).toEqual([
        'synced',
        'unsynced',
      ]);
    } finally {
      await reopened.close();
    }
    await expect(database.runUnsynced(() => 1)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it("keeps SQLite's own default page cache of 2 MB, not better-sqlite3's 16 MB", () =>
    withDatabase('cache.db', async (database) => {
      expect(database.connection.pragma('cache_size', { simple: true })).toBe(-2000);
    }));

  describe('unsynced writes (runUnsynced)', () => {
    const emptyWal = (database: SqliteDatabase) => database.connection.pragma('wal_checkpoint(TRUNCATE)');

    it('asked for in one tick, commit in one transaction, unsynced, after the tick', () =>
      withDatabase('batch.db', async (database) => {
        const insert = database.connection.prepare('INSERT INTO t (v) VALUES (?)');
        emptyWal(database);
        const seen: unknown[] = [];
        const writes = Array.from({ length: 20 }, (_, i) =>
          database.runUnsynced(() => {
            seen.push(database.connection.pragma('synchronous', { simple: true }));
            return insert.run(`v${i}`).lastInsertRowid;
          }),
        );
        expect(seen).toEqual([]); // not yet: the writes of this tick are still being asked for
        expect(await Promise.all(writes)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        expect(new Set(seen)).toEqual(new Set([1])); // NORMAL while they ran, from the first batch on
        expect(database.settings().synchronous).toBe(2); // FULL again after
        // One commit: table t's page written once, not once per write.
        expect(walFrames(database)).toBe(1);
        expect(database.walSyncs).toBe(0);

        emptyWal(database);
        for (let i = 0; i < 5; i++) await database.runUnsynced(() => insert.run(`one by one ${i}`));
        expect(walFrames(database)).toBe(5);
      }));

    it('a write that fails is rolled back and rejected alone; the others of its batch commit', () =>
      withDatabase('batch-failure.db', async (database) => {
        const insert = database.connection.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
        const outcomes = await Promise.allSettled([
          database.runUnsynced(() => insert.run(1, 'first')),
          database.runUnsynced(() => {
            insert.run(2, 'rolled back with its write');
            insert.run(1, 'duplicate');
          }),
          database.runUnsynced(() => {
            throw new TypeError('not SQLite');
          }),
          database.runUnsynced(() => insert.run(3, 'third').changes),
        ]);
        expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
        expect(outcomes[1]).toMatchObject({
          reason: { code: 'INTERNAL', message: expect.stringMatching(/SQLITE_CONSTRAINT/) },
        });
        expect(outcomes[2]).toMatchObject({
          reason: { code: 'INTERNAL', message: expect.stringMatching(/TypeError/) },
        });
        expect(outcomes[3]).toMatchObject({ value: 1 });
        expect(database.connection.prepare('SELECT id, v FROM t ORDER BY id').all()).toEqual([
          { id: 1, v: 'first' },
          { id: 3, v: 'third' },
        ]);
      }));

    it('when the batch cannot commit, every write of it fails retryably and none is kept', async () => {
      const database = new SqliteDatabase(join(dir, 'batch-busy.db'), { busyTimeoutMs: 0 });
      const other = new Database(join(dir, 'batch-busy.db'));
      try {
        database.connection.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
        other.exec('BEGIN IMMEDIATE'); // another process holds the write lock
        const insert = database.connection.prepare('INSERT INTO t (v) VALUES (?)');
        const outcomes = await Promise.allSettled([
          database.runUnsynced(() => insert.run('a')),
          database.runUnsynced(() => insert.run('b')),
        ]);
        for (const outcome of outcomes)
          expect(outcome).toMatchObject({ reason: { code: 'STORE_UNAVAILABLE', retryAfter: 1 } });
        other.exec('ROLLBACK');
        await database.runUnsynced(() => insert.run('c'));
        expect(database.connection.prepare('SELECT v FROM t').pluck().all()).toEqual(['c']);
        expect(database.settings().synchronous).toBe(2);
      } finally {
        other.close();
        await database.close();
      }
    });
  });

  it('has nothing to sync in memory', async () => {
    const database = new SqliteDatabase(':memory:');
    try {
      await database.transaction(() => database.connection.exec('CREATE TABLE m (id INTEGER)'));
      expect(database.walSyncs).toBe(0);
    } finally {
      await database.close();
    }
  });
});
