import type * as fsModule from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SqliteDatabase } from '../../src/database/sqlite.js';

const disk = vi.hoisted(() => ({ failing: false }));

// The disk fails the WAL's fdatasync while `disk.failing` is set.
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof fsModule>();
  return {
    ...fs,
    fdatasync: (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
      if (!disk.failing) return fs.fdatasync(fd, callback);
      const error: NodeJS.ErrnoException = new Error('EIO: i/o error, fdatasync');
      error.code = 'EIO';
      setImmediate(() => callback(error));
    },
  };
});

describe('a WAL sync that fails', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-wal-fail-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fails the transaction with a retryable STORE_UNAVAILABLE, and the next sync works again', async () => {
    const database = new SqliteDatabase(join(dir, 'fail.db'));
    try {
      database.connection.exec('CREATE TABLE t (id INTEGER PRIMARY KEY)');
      const insert = database.connection.prepare('INSERT INTO t (id) VALUES (?)');
      disk.failing = true;
      const failure = await database.transaction(() => insert.run(1)).catch((error: unknown) => error);
      expect(failure).toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'sync_failed', retryAfter: 1 });
      expect((failure as Error).message).toContain('EIO');
      disk.failing = false;
      await expect(database.transaction(() => insert.run(2))).resolves.toMatchObject({ changes: 1 });
    } finally {
      disk.failing = false;
      await database.close();
    }
  });
});
