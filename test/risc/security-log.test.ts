/**
 * The security event log's contract suite (./security-log-contract.ts), unchanged, on SQLite and
 * on Postgres.
 *
 * Postgres needs a server: BEHALF_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe } from 'vitest';
import {
  migratePostgres,
  openDatabase,
  type Database,
  type PostgresDatabase,
  type SqliteDatabase,
} from '../../src/database/index.js';
import { PostgresJobBackend, SqliteJobBackend } from '../../src/jobs/index.js';
import { PostgresSecurityLog, SqliteSecurityLog } from '../../src/risc/index.js';
import { PostgresStore, SqliteStore } from '../../src/vault/index.js';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';
import { runSecurityLogContract, type SecurityLogWorld } from './security-log-contract.js';

const logger = pino({ level: 'silent' });

/** The world over `first`; `openMore` opens another database object over the same data. */
async function worldOver(first: Database, openMore: () => Promise<Database>): Promise<SecurityLogWorld> {
  const databases: Database[] = [first];
  const logOver = (database: Database) =>
    database.kind === 'sqlite' ? new SqliteSecurityLog(database) : new PostgresSecurityLog(database);
  const jobs =
    first.kind === 'sqlite'
      ? new SqliteJobBackend(first, { logger })
      : new PostgresJobBackend(first, { logger });
  return {
    database: first,
    log: logOver(first),
    store: first.kind === 'sqlite' ? new SqliteStore(first) : new PostgresStore(first),
    jobs,
    async openAnother() {
      const database = await openMore();
      databases.push(database);
      return { database, log: logOver(database) };
    },
    refuseStateWrites: (sub) =>
      first.kind === 'sqlite' ? refuseSqlite(first, sub) : refusePostgres(first, sub),
    async close() {
      await jobs.stop();
      for (const database of databases) await database.close();
    },
  };
}

/** A literal for a test's own, plain sub (letters and digits only). */
function literal(sub: string): string {
  if (!/^[a-z0-9]+$/.test(sub))
    throw new Error(`refuseStateWrites takes plain subs, not ${JSON.stringify(sub)}`);
  return `'${sub}'`;
}

async function refuseSqlite(database: SqliteDatabase, sub: string): Promise<() => Promise<void>> {
  for (const when of ['INSERT', 'UPDATE']) {
    database.connection.exec(
      `CREATE TRIGGER refuse_state_${when.toLowerCase()} BEFORE ${when} ON user_security
       WHEN NEW.sub = ${literal(sub)} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`,
    );
  }
  return async () => {
    database.connection.exec('DROP TRIGGER refuse_state_insert; DROP TRIGGER refuse_state_update');
  };
}

async function refusePostgres(database: PostgresDatabase, sub: string): Promise<() => Promise<void>> {
  await database.query(
    `CREATE FUNCTION refuse_state() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF NEW.sub = ${literal(sub)} THEN RAISE EXCEPTION 'refused by the test'; END IF;
       RETURN NEW;
     END $$`,
  );
  await database.query(
    'CREATE TRIGGER refuse_state BEFORE INSERT OR UPDATE ON user_security FOR EACH ROW EXECUTE FUNCTION refuse_state()',
  );
  return async () => {
    await database.query('DROP TRIGGER refuse_state ON user_security');
    await database.query('DROP FUNCTION refuse_state()');
  };
}

describe('SQLite', () => {
  let dir: string;
  let counter = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-security-log-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // A file, so that a second connection (another process's view) shares the data.
  runSecurityLogContract('sqlite', async () => {
    const url = `sqlite:${join(dir, `log-${++counter}`, 'behalf.db')}`;
    return worldOver(await openDatabase(url), () => openDatabase(url));
  });
});

const server = await postgresForTests('security log on Postgres');

describe.runIf(server !== undefined)('Postgres', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase(server!, 'security_log');
  });

  afterAll(async () => {
    await db?.drop();
  });

  // Each world a fresh schema, migrated as `behalf migrate` does; each database object a pool of its own.
  runSecurityLogContract('postgres', async () => {
    const url = await db.freshSchema();
    await migratePostgres(url);
    return worldOver(await openDatabase(url), () => openDatabase(url));
  });
});
