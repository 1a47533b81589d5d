/**
 * One behalf database that several processes or runtimes of a test share (a Postgres database of
 * its own, or a SQLite file), with what coherence tests need from outside behalf: an API key, and
 * a way to change a grant behind every cache's back to learn whether an answer came from memory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { migrateDatabase } from '../../src/database/index.js';
import { createApiKey, openStore } from '../../src/vault/index.js';
import { createTestDatabase } from './postgres.js';

export interface SharedDatabase {
  kind: 'postgres' | 'sqlite';
  /** BEHALF_DATABASE_URL */
  url: string;
  /** The Postgres database's name (to find its sessions), or the SQLite file's path. */
  name: string;
  /** A new service API key for this database. */
  createApiKey(): Promise<string>;
  /**
   * Mark `sub`'s stored access token expired without announcing the change: the grant triggers
   * that tell caches about changes are off for this one write. A process that then answers with
   * the token it answered before, without refreshing, answered from memory.
   */
  expireStoredTokenSilently(sub: string): Promise<void>;
  /** Run SQL on it (Postgres: $1 placeholders; SQLite: ?), as the test's own user. */
  query<T = Record<string, unknown>>(sql: string, values?: unknown[]): Promise<T[]>;
  /** Remove it (every connection to a Postgres database is ended first). */
  drop(): Promise<void>;
}

/** A new, migrated Postgres database on the server at `serverUrl`. */
export async function createSharedPostgres(serverUrl: string, label: string): Promise<SharedDatabase> {
  const database = await createTestDatabase(serverUrl, label);
  try {
    await migrateDatabase(database.url);
  } catch (error) {
    await database.drop();
    throw error;
  }
  return {
    kind: 'postgres',
    url: database.url,
    name: database.name,
    createApiKey: () => apiKeyFor(database.url),
    async expireStoredTokenSilently(sub) {
      const client = new pg.Client({ connectionString: database.url });
      client.on('error', () => undefined);
      await client.connect();
      try {
        // ALTER TABLE … DISABLE TRIGGER is transactional: no other session ever sees it off.
        await client.query('BEGIN');
        await client.query('ALTER TABLE grants DISABLE TRIGGER USER');
        await client.query('UPDATE grants SET access_token_expires_at = 0 WHERE sub = $1', [sub]);
        await client.query('ALTER TABLE grants ENABLE TRIGGER USER');
        await client.query('COMMIT');
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    query: async <T>(sql: string, values: unknown[] = []) => (await database.query(sql, values)).rows as T[],
    drop: () => database.drop(),
  };
}

/** A new, migrated SQLite file in a temporary folder. */
export async function createSharedSqlite(): Promise<SharedDatabase> {
  const dir = await mkdtemp(join(tmpdir(), 'behalf-shared-'));
  const path = join(dir, 'behalf.db');
  const url = `sqlite:${path}`;
  await migrateDatabase(url);
  const withConnection = <T>(body: (db: Database.Database) => T): T => {
    const db = new Database(path);
    try {
      db.pragma('busy_timeout = 10000');
      return body(db);
    } finally {
      db.close();
    }
  };
  return {
    kind: 'sqlite',
    url,
    name: path,
    createApiKey: () => apiKeyFor(url),
    async expireStoredTokenSilently(sub) {
      withConnection((db) => {
        // SQLite has no way to switch a trigger off: drop the grant triggers and put them back in
        // the same transaction, so no other connection ever sees them gone.
        const triggers = db
          .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'grants'")
          .all() as Array<{ name: string; sql: string }>;
        db.transaction(() => {
          for (const trigger of triggers) db.exec(`DROP TRIGGER "${trigger.name}"`);
          db.prepare('UPDATE grants SET access_token_expires_at = 0 WHERE sub = ?').run(sub);
          for (const trigger of triggers) db.exec(trigger.sql);
        }).immediate();
      });
    },
    query: async <T>(sql: string, values: unknown[] = []) =>
      withConnection((db) => {
        const statement = db.prepare(sql);
        return (statement.reader ? statement.all(...values) : (statement.run(...values), [])) as T[];
      }),
    drop: () => rm(dir, { recursive: true, force: true }),
  };
}

async function apiKeyFor(url: string): Promise<string> {
  const store = await openStore(url);
  try {
    return (await createApiKey(store, 'coherence test')).key;
  } finally {
    await store.close();
  }
}
