/**
 * The webhook store's contract suite (./store-contract.ts), unchanged, on SQLite and on Postgres,
 * with events recorded the way the vault records them: inside a transaction of the database layer.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import { migratePostgres, openDatabase, type Database } from '../../src/database/index.js';
import { webhookStoreFor } from '../../src/webhooks/index.js';
import { recordPostgresEvents, recordSqliteEvents, type WebhookEvent } from '../../src/webhooks/outbox.js';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';
import { runWebhookStoreContract, type WebhookStoreWorld } from './store-contract.js';

const ROLLED_BACK = 'rolled back by the test';

async function worldOver(first: Database, openMore: () => Promise<Database>): Promise<WebhookStoreWorld> {
  const databases: Database[] = [first];
  return {
    store: webhookStoreFor(first),
    async record(events: WebhookEvent[], now: number, options: { fail?: boolean } = {}) {
      const fail = () => {
        if (options.fail === true) throw new Error(ROLLED_BACK);
      };
      if (first.kind === 'sqlite') {
        return first.transaction(() => {
          const written = recordSqliteEvents(first, events, now);
          fail();
          return written;
        });
      }
      return first.transaction(async (db) => {
        const written = await recordPostgresEvents(db, events, now);
        fail();
        return written;
      });
    },
    async openAnother() {
      const database = await openMore();
      databases.push(database);
      return webhookStoreFor(database);
    },
    async close() {
      for (const database of databases) await database.close();
    },
  };
}

describe('SQLite', () => {
  let dir: string;
  let counter = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-webhook-store-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // A file, so that a second connection (another process's view) shares the data.
  runWebhookStoreContract('sqlite', async () => {
    const url = `sqlite:${join(dir, `store-${++counter}`, 'behalf.db')}`;
    return worldOver(await openDatabase(url), () => openDatabase(url));
  });
});

const server = await postgresForTests('webhook store on Postgres');

describe.runIf(server !== undefined)('Postgres', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase(server!, 'webhook_store');
  });

  afterAll(async () => {
    await db?.drop();
  });

  // Each world a fresh schema, migrated as `behalf migrate` does; each database object a pool of its own.
  runWebhookStoreContract('postgres', async () => {
    const url = await db.freshSchema();
    await migratePostgres(url);
    return worldOver(await openDatabase(url), () => openDatabase(url));
  });
});
