/**
 * The admin console's stores (./admin-store-contract.ts), unchanged, on SQLite and on Postgres.
 * Postgres needs a server: BEHALF_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import {
  PostgresAdminSessionStore,
  PostgresSweepRunStore,
  SqliteAdminSessionStore,
  SqliteSweepRunStore,
} from '../../src/admin/index.js';
import { migratePostgres, openPostgresDatabase, SqliteDatabase } from '../../src/database/index.js';
import { PostgresStore, SqliteStore } from '../../src/vault/index.js';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';
import { runAdminStoresContract } from './admin-store-contract.js';

runAdminStoresContract('sqlite', async () => {
  const database = new SqliteDatabase(':memory:');
  return {
    sessions: new SqliteAdminSessionStore(database),
    sweeps: new SqliteSweepRunStore(database),
    store: new SqliteStore(database),
    close: () => database.close(),
  };
});

const server = await postgresForTests('admin console stores on Postgres');

describe.runIf(server !== undefined)('Postgres', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase(server!, 'admin_stores');
  });

  afterAll(async () => {
    await db?.drop();
  });

  runAdminStoresContract('postgres', async () => {
    const url = await db.freshSchema();
    await migratePostgres(url);
    const database = await openPostgresDatabase(url);
    return {
      sessions: new PostgresAdminSessionStore(database),
      sweeps: new PostgresSweepRunStore(database),
      store: new PostgresStore(database),
      close: () => database.close(),
    };
  });
});
