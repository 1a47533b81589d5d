/**
 * `behalf migrate` and the start-up schema check, end to end through the CLI: migrate applies
 * what is missing and nothing more, and `serve` refuses a Postgres schema older or newer than it
 * knows with one line that says what to do (issue 5).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newKeyEntry, POSTGRES_SCHEMA_VERSION, SQLITE_SCHEMA_VERSION } from '../../src/vault/index.js';
import { closedPort, createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';

const server = await postgresForTests('behalf migrate on Postgres');
const TSX = join(import.meta.dirname, '../../node_modules/tsx/dist/esm/index.mjs');
const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'behalf-migrate-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function behalf(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !name.startsWith('BEHALF_')),
    );
    const child = spawn(process.execPath, ['--import', TSX, MAIN, ...args], {
      cwd: dir,
      env: { ...clean, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `url` with a password added: trust auth ignores it, and no output may show it. */
function withPassword(url: string): string {
  const parsed = new URL(url);
  parsed.password = 'pw-Cli-secret';
  return parsed.href;
}

describe('behalf migrate on SQLite', () => {
  it('creates and migrates the file, then has nothing to apply', async () => {
    const path = join(dir, 'sqlite', 'behalf.db');
    const first = await behalf(['migrate', '--database-url', `sqlite:${path}`]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(
      `Applied migration 1: users, grants, api_keys\nApplied migration 2: refresh leases\nApplied migration 3: security events, job runs, job queue\nApplied migration 4: grant change log\nApplied migration 5: encryption key checks\nApplied migration 6: webhooks\nApplied migration 7: admin console: sessions, sweep runs, last refresh per grant, security event history, API key last use, users by email\nApplied migration 8: grant counts\nApplied migration 9: refresh token expiry\n${path} is now at schema version ${SQLITE_SCHEMA_VERSION} (was 0).\n`,
    );
    const again = await behalf(['migrate'], { BEHALF_DATABASE_URL: `sqlite:${path}` });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(
      `${path} is at schema version ${SQLITE_SCHEMA_VERSION}, the newest this behalf knows: nothing to apply.\n`,
    );
  });
});

describe.runIf(server !== undefined)('behalf migrate on Postgres', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase(server!, 'migrate_cli');
  });

  afterAll(async () => {
    await db?.drop();
  });

  /** What `serve` needs besides the database: keys and a client secret file. Google is never called before the store opens. */
  async function serveEnv(databaseUrl: string): Promise<Record<string, string>> {
    const secretFile = join(dir, 'client_secret.json');
    await writeFile(
      secretFile,
      JSON.stringify({
        web: {
          client_id: '1-server.apps.googleusercontent.com',
          client_secret: 'GOCSPX-test-only',
          redirect_uris: [],
          javascript_origins: [],
        },
      }),
    );
    return {
      BEHALF_DATABASE_URL: databaseUrl,
      BEHALF_ENCRYPTION_KEYS: newKeyEntry('k1'),
      BEHALF_CLIENT_SECRET_FILE: secretFile,
      BEHALF_APP_CLIENT_IDS: '2-ios.apps.googleusercontent.com',
      BEHALF_PORT: '0',
      BEHALF_HOST: '127.0.0.1',
    };
  }

  it('applies the migrations once and says so; run again, it applies nothing; never prints the password', async () => {
    const url = withPassword(await db.freshSchema());
    const target = `postgres://${new URL(url).username}@${new URL(url).host}/${db.name}`;
    const first = await behalf(['migrate', '--database-url', url]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(
      `Applied migration 1: users, grants, api_keys\nApplied migration 2: refresh leases\nApplied migration 3: security events, job runs, job queue\nApplied migration 4: grant change notifications\nApplied migration 5: encryption key checks\nApplied migration 6: webhooks\nApplied migration 7: admin console: sessions, sweep runs, last refresh per grant, security event history, API key last use, users by email\nApplied migration 8: grant counts\nApplied migration 9: refresh token expiry\n${target} is now at schema version ${POSTGRES_SCHEMA_VERSION} (was 0).\n`,
    );
    const again = await behalf(['migrate'], { BEHALF_DATABASE_URL: url });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(
      `${target} is at schema version ${POSTGRES_SCHEMA_VERSION}, the newest this behalf knows: nothing to apply.\n`,
    );
    expect(first.stdout + again.stdout).not.toContain('pw-Cli-secret');
  });

  it('an unreachable server: one line naming BEHALF_DATABASE_URL, exit 75, no password', async () => {
    const result = await behalf([
      'migrate',
      '--database-url',
      `postgres://behalf:pw-Cli-secret@127.0.0.1:${await closedPort()}/behalf`,
    ]);
    expect(result.code).toBe(75);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^behalf: BEHALF_DATABASE_URL: Postgres at postgres:\/\/behalf@127\.0\.0\.1:\d+\/behalf cannot be reached \(ECONNREFUSED\)[^\n]*\n$/,
    );
    expect(result.stderr).not.toContain('pw-Cli-secret');
  });

  it('serve refuses an unmigrated schema, exit 78, saying to run behalf migrate; after migrate the check passes', async () => {
    const url = withPassword(await db.freshSchema());
    const refused = await behalf(['serve'], await serveEnv(url));
    expect(refused.code).toBe(78);
    expect(refused.stderr).toMatch(
      /^behalf: BEHALF_DATABASE_URL: .*has no behalf schema yet \(version 0\).*run `behalf migrate`[^\n]*\n$/,
    );
    expect(refused.stderr).not.toContain('pw-Cli-secret');
    expect((await behalf(['migrate', '--database-url', url])).code).toBe(0);
  });

  it('serve refuses a schema older or newer than it knows', async () => {
    const url = await db.freshSchema();
    const schema = new URL(url).searchParams.get('options')!.replace('-c search_path=', '');
    expect((await behalf(['migrate', '--database-url', url])).code).toBe(0);
    await db.query(`DELETE FROM ${schema}.schema_migrations WHERE version = $1`, [POSTGRES_SCHEMA_VERSION]);
    const older = await behalf(['serve'], await serveEnv(url));
    expect(older.code).toBe(78);
    expect(older.stderr).toMatch(
      /^behalf: BEHALF_DATABASE_URL: .*older than this behalf needs.*run `behalf migrate`/,
    );
    await db.query(
      `INSERT INTO ${schema}.schema_migrations (version, name) VALUES ($1, 'back'), ($2, 'from the future')`,
      [POSTGRES_SCHEMA_VERSION, POSTGRES_SCHEMA_VERSION + 1],
    );
    const newer = await behalf(['serve'], await serveEnv(url));
    expect(newer.code).toBe(78);
    expect(newer.stderr).toMatch(/^behalf: BEHALF_DATABASE_URL: .*newer than this behalf knows/);
  });
});
