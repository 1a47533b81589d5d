/**
 * Issue 13, point 5: `behalf webhooks add|list|remove`, with the database and the encryption keys
 * only (no Google client secret), on SQLite and on Postgres.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { migratePostgres, openDatabase } from '../../src/database/index.js';
import { parseKeyring, PostgresStore, SqliteStore, verifyKeyring } from '../../src/vault/index.js';
import { Webhooks, webhookStoreFor } from '../../src/webhooks/index.js';
import { recordPostgresEvents, recordSqliteEvents } from '../../src/webhooks/outbox.js';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';
import { Receiver, verifyAt } from './receiver.js';

const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts')];
/** Each run starts a Node process that compiles the CLI: seconds apiece on a busy machine. */
const SLOW = 240_000;

/** Run the CLI with exactly these BEHALF_* settings (none inherited from the test's environment). */
function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('BEHALF_')),
  );
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...CLI, ...args], {
      env: { ...inherited, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function runCliContract(
  name: string,
  freshDatabaseUrl: () => Promise<string>,
  options: { refusals: boolean },
): void {
  describe(`behalf webhooks on ${name}`, () => {
    const key = randomBytes(32).toString('base64');
    let env: Record<string, string>;
    let receiver: Receiver;

    beforeEach(async () => {
      env = { BEHALF_DATABASE_URL: await freshDatabaseUrl(), BEHALF_ENCRYPTION_KEYS: `k1:${key}` };
      receiver = await Receiver.start();
    });

    afterEach(async () => {
      await receiver.close();
    });

    it(
      'add prints the id and, on the last line, the secret deliveries are signed with; list never shows it; remove removes',
      async () => {
        const added = await run(['webhooks', 'add', receiver.url, '--events', 'grant.revoked,user.deleted'], {
          ...env,
          BEHALF_WEBHOOK_ALLOW_PRIVATE: 'true',
        });
        expect(added).toMatchObject({ code: 0, stderr: '' });
        const [line, secret, ...rest] = added.stdout.split('\n');
        expect(rest).toEqual(['']);
        const id = /^Created webhook (wh_[0-9a-f]{24}) for /.exec(line!)?.[1];
        expect(line).toBe(
          `Created webhook ${id} for ${receiver.url} (events: grant.revoked,user.deleted). Its signing secret is shown once; store it as a secret.`,
        );
        expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);

        const listed = await run(['webhooks', 'list'], env);
        expect(listed).toEqual({
          code: 0,
          stdout: `${id}  enabled  ${receiver.url}  events: grant.revoked,user.deleted  deliveries: 0 pending, 0 delivered, 0 failed\n`,
          stderr: '',
        });

        // The printed secret is the one a server signs this endpoint's deliveries with.
        const database = await openDatabase(env.BEHALF_DATABASE_URL!);
        try {
          const event = {
            type: 'grant.revoked' as const,
            sub: '1234',
            fields: { previous_status: 'active', reason: 'signed_out' },
          };
          const now = systemClock.now();
          if (database.kind === 'sqlite')
            await database.transaction(() => recordSqliteEvents(database, [event], now));
          else await database.transaction((db) => recordPostgresEvents(db, [event], now));
          const webhooks = new Webhooks({
            store: webhookStoreFor(database),
            keyring: parseKeyring(`k1:${key}`),
            clock: systemClock,
            logger: pino({ level: 'silent' }),
            allowPrivate: true,
          });
          expect(await webhooks.deliverDue()).toBe(1);
          await webhooks.stop();
        } finally {
          await database.close();
        }
        expect(verifyAt(systemClock, secret!, receiver.received[0]!)).toEqual({
          type: 'grant.revoked',
          timestamp: expect.any(String),
          data: { sub: '1234', previous_status: 'active', reason: 'signed_out' },
        });

        expect(await run(['webhooks', 'remove', id!], env)).toEqual({
          code: 0,
          stdout: `Removed webhook ${id}.\n`,
          stderr: '',
        });
        expect(await run(['webhooks', 'remove', id!], env)).toEqual({
          code: 66,
          stdout: '',
          stderr: `behalf: No webhook endpoint ${id}.\n`,
        });
        expect(await run(['webhooks', 'list'], env)).toEqual({
          code: 0,
          stdout: 'No webhook endpoints.\n',
          stderr: '',
        });
      },
      SLOW,
    );

    if (!options.refusals) return;

    it(
      'refuses http and private hosts without BEHALF_WEBHOOK_ALLOW_PRIVATE, storing nothing',
      async () => {
        const refusals = [
          [receiver.url, 'A webhook URL must be https (http only with BEHALF_WEBHOOK_ALLOW_PRIVATE=true).'],
          [
            'https://10.0.0.1/hook',
            "The webhook URL's host 10.0.0.1 is on a loopback, private or otherwise non-public network",
          ],
        ] as const;
        for (const [url, message] of refusals) {
          const refused = await run(['webhooks', 'add', url], env);
          expect(refused.code).toBe(64);
          expect(refused.stdout).toBe('');
          expect(refused.stderr).toContain(`behalf: ${message}`);
        }
        const database = await openDatabase(env.BEHALF_DATABASE_URL!);
        try {
          expect(await webhookStoreFor(database).listEndpoints()).toEqual([]);
        } finally {
          await database.close();
        }
        expect(receiver.connections).toBe(0);
      },
      SLOW,
    );

    it(
      'stops at a key whose bytes differ from the ones this database was written with',
      async () => {
        // The database is first written with the right key (as any command records its key check).
        const database = await openDatabase(env.BEHALF_DATABASE_URL!);
        try {
          await verifyKeyring(
            database.kind === 'sqlite' ? new SqliteStore(database) : new PostgresStore(database),
            parseKeyring(`k1:${key}`),
            systemClock.now(),
          );
        } finally {
          await database.close();
        }
        const wrong = await run(['webhooks', 'list'], {
          ...env,
          BEHALF_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
        });
        expect(wrong.code).toBe(78);
        expect(wrong.stdout).toBe('');
        expect(wrong.stderr).toMatch(/^behalf: Encryption key id 'k1' has different bytes/);
      },
      SLOW,
    );
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'behalf-webhooks-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let files = 0;
runCliContract('SQLite', async () => `sqlite:${join(dir, `db-${++files}`, 'behalf.db')}`, { refusals: true });

const server = await postgresForTests('behalf webhooks on Postgres');
describe.runIf(server !== undefined)('Postgres', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(server!, 'webhooks_cli');
  });
  afterAll(async () => {
    await db?.drop();
  });
  // The refusals happen before the database is touched: once, on SQLite, is enough.
  runCliContract(
    'Postgres',
    async () => {
      const url = await db.freshSchema();
      await migratePostgres(url);
      return url;
    },
    { refusals: false },
  );
});
