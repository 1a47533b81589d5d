/**
 * Issue 11, point 6 ("Wrong key, clear stop"), end to end through the CLI: a database written with
 * one key, then `behalf serve` (and `behalf keys rotate`) started with different bytes under the
 * same key id stop before anything is written, with exit status 78 and one stderr line naming the
 * key id — not a 500 "ciphertext altered or moved" per user later. SQLite and Postgres.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../src/emulator/index.js';
import { migrateStore, openStore, parseKeyring, Vault, type Store } from '../../src/vault/index.js';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';
import { run, start, stop } from './cli-process.js';

const server = await postgresForTests('wrong key at start-up on Postgres');

const newKey = () => randomBytes(32).toString('base64');

function spellings(base64: string): string[] {
  const raw = Buffer.from(base64, 'base64');
  return [base64, raw.toString('base64url'), raw.toString('hex'), base64.slice(0, 16)];
}

/** `behalf serve` on a port of its own choosing (BEHALF_PORT=0): resolves with its URL once it listens. */
async function serve(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const { child, match } = await start(
    ['serve'],
    { ...env, BEHALF_PORT: '0', BEHALF_HOST: '127.0.0.1', BEHALF_LOG_LEVEL: 'info' },
    /"url":"(http:\/\/127\.0\.0\.1:\d+)"/,
  );
  return { child, url: match[1]! };
}

/** A real sign-in through a running server, so the database holds tokens encrypted under its key. */
async function signIn(emulator: RunningEmulator, serverUrl: string, email: string): Promise<string> {
  const post = async (url: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  const user = (await (await post(`${emulator.url}/emulator/users`, { email })).json()) as { sub: string };
  const { code } = (await (
    await post(`${emulator.url}/emulator/codes`, {
      sub: user.sub,
      client_id: emulator.clients.apps.ios,
      scope: 'openid email profile',
    })
  ).json()) as { code: string };
  const response = await post(
    `${serverUrl}/v1/google/signin`,
    { code },
    { 'x-requested-with': 'XMLHttpRequest' },
  );
  expect(response.status).toBe(201);
  return user.sub;
}

async function withStore<T>(url: string, use: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(url);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

/** What a start-up could have written: grants (ciphertexts and versions) and key checks. */
const snapshot = (url: string) =>
  withStore(url, async (store) => ({
    grants: (await store.listGrants({ limit: 100 })).grants,
    checks: await store.listKeyChecks(),
  }));

function expectWrongKeyLine(
  result: { code: number | null; stderr: string },
  keyId: string,
  secrets: string[],
): void {
  expect(result.code).toBe(78);
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(
    new RegExp(
      `^behalf: Encryption key id '${keyId}' has different bytes from the key this database was written with under that id; nothing was written\\.`,
    ),
  );
  for (const secret of secrets.flatMap(spellings)) expect(result.stderr).not.toContain(secret);
}

describe('a wrong key at start-up (CLI)', () => {
  let emulator: RunningEmulator;
  let dir: string;
  let base: Record<string, string>;

  beforeAll(async () => {
    emulator = await startEmulator();
    dir = await mkdtemp(join(tmpdir(), 'behalf-wrong-key-'));
    const secretFile = join(dir, 'client_secret.json');
    await emulator.writeClientSecret(secretFile);
    const { ios, android, web } = emulator.clients.apps;
    base = {
      BEHALF_CLIENT_SECRET_FILE: secretFile,
      BEHALF_APP_CLIENT_IDS: [ios, android, web].join(','),
      BEHALF_GOOGLE_DISCOVERY_URL: `${emulator.url}/.well-known/openid-configuration`,
      BEHALF_GOOGLE_API_URL: emulator.url,
    };
  });

  afterAll(async () => {
    await emulator?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('SQLite: serve and keys rotate stop with exit 78 and one line naming the key id; the grants stay readable with the right key', async () => {
    const databaseUrl = `sqlite:${join(dir, 'behalf.db')}`;
    const right = newKey();
    const wrong = newKey();
    const newer = newKey();

    const first = await serve({
      ...base,
      BEHALF_DATABASE_URL: databaseUrl,
      BEHALF_ENCRYPTION_KEYS: `k1:${right}`,
    });
    let sub: string;
    try {
      sub = await signIn(emulator, first.url, `wrong-key-${randomBytes(3).toString('hex')}@example.com`);
    } finally {
      expect(await stop(first.child)).toBe(0);
    }
    const before = await snapshot(databaseUrl);
    expect(before.checks.map((c) => c.keyId)).toEqual(['k1']);

    const served = await run(['serve'], {
      ...base,
      BEHALF_DATABASE_URL: databaseUrl,
      BEHALF_ENCRYPTION_KEYS: `k1:${wrong}`,
      BEHALF_PORT: '0',
      BEHALF_HOST: '127.0.0.1',
    });
    expectWrongKeyLine(served, 'k1', [right, wrong]);

    // A rotation to a new primary with the wrong old key: refused before k2 is recorded or anything re-encrypted.
    const rotated = await run(['keys', 'rotate'], {
      ...base,
      BEHALF_DATABASE_URL: databaseUrl,
      BEHALF_ENCRYPTION_KEYS: `k2:${newer},k1:${wrong}`,
    });
    expectWrongKeyLine(rotated, 'k1', [right, wrong, newer]);
    expect(rotated.stdout).toBe('');

    expect(await snapshot(databaseUrl)).toEqual(before);
    await withStore(databaseUrl, async (store) => {
      const grant = await new Vault(store, parseKeyring(`k1:${right}`)).getGrant(
        sub,
        emulator.clients.server.clientId,
      );
      expect(grant?.refreshToken).toBeTruthy();
    });
  }, 90_000);

  describe.runIf(server !== undefined)('Postgres', () => {
    let db: TestDatabase;

    beforeAll(async () => {
      db = await createTestDatabase(server!, 'wrongkey');
      await migrateStore(db.url);
    });

    afterAll(async () => {
      await db?.drop();
    });

    it('serve stops with exit 78 and one line naming the key id; nothing is written', async () => {
      const right = newKey();
      const wrong = newKey();
      const env = { ...base, BEHALF_DATABASE_URL: db.url };
      const first = await serve({ ...env, BEHALF_ENCRYPTION_KEYS: `prod-1:${right}` });
      try {
        await signIn(emulator, first.url, `wrong-key-pg-${randomBytes(3).toString('hex')}@example.com`);
      } finally {
        expect(await stop(first.child)).toBe(0);
      }
      const before = await snapshot(db.url);
      expect(before.checks.map((c) => c.keyId)).toEqual(['prod-1']);

      const served = await run(['serve'], {
        ...env,
        BEHALF_ENCRYPTION_KEYS: `prod-1:${wrong}`,
        BEHALF_PORT: '0',
        BEHALF_HOST: '127.0.0.1',
      });
      expectWrongKeyLine(served, 'prod-1', [right, wrong]);
      expect(await snapshot(db.url)).toEqual(before);
    }, 90_000);
  });
});
