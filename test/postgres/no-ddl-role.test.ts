/**
 * Issue 11, point 5: `behalf migrate` prepares the whole database (vault, security events, job
 * runs, pg-boss's schema), so `behalf serve`, the library and its job workers run as a role with
 * no DDL rights at all.
 *
 * What the serving role needs, all of it granted here after `behalf migrate` ran as the owner
 * (`<schema>` is behalf's schema, `public` by default; `<schema>_jobs` is pg-boss's, `behalf_jobs`
 * beside `public`):
 *
 *   GRANT CONNECT ON DATABASE <db> TO behalf_app;
 *   GRANT USAGE ON SCHEMA <schema>, <schema>_jobs TO behalf_app;
 *   GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA <schema>, <schema>_jobs TO behalf_app;
 *   GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA <schema>, <schema>_jobs TO behalf_app;
 *   GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA <schema>, <schema>_jobs TO behalf_app;
 *
 * and nothing else: no CREATE on the database or on either schema, no TEMP, not the owner of
 * anything (before Postgres 15, also REVOKE CREATE ON SCHEMA public FROM PUBLIC, which otherwise
 * lets every role create there). LISTEN, which every instance uses for grant changes, needs no
 * grant. Queues are made by pg-boss's create_queue, which `behalf migrate` made SECURITY DEFINER.
 * Grants on ALL TABLES cover the tables that exist when they are run: run them again after each
 * `behalf migrate` that adds tables, or set ALTER DEFAULT PRIVILEGES for the migrating role.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../src/emulator/index.js';
import { createBehalf, type Behalf } from '../../src/index.js';
import { DRIVE_APPDATA } from '../support/harness.js';
import { loopbackFetch, loopbackRequest } from '../support/no-network.js';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../support/postgres.js';

const server = await postgresForTests('behalf serve as a role without DDL rights');
const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts')];
const SCOPES = `openid email profile ${DRIVE_APPDATA}`;

/** Run a behalf command to its end; its exit code and output. */
function behalfCommand(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !name.startsWith('BEHALF_')),
    );
    const child = spawn(process.execPath, [...CLI, ...args], {
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

/** `behalf serve` on a port the kernel picks (BEHALF_PORT=0); resolves with its URL once it listens. */
async function serve(
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('BEHALF_')),
  );
  const child = spawn(process.execPath, [...CLI, 'serve'], {
    env: { ...clean, ...env, BEHALF_PORT: '0', BEHALF_HOST: '127.0.0.1', BEHALF_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      const line = output.split('\n').find((l) => l.includes('"behalf is listening"'));
      if (line !== undefined) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`behalf serve exited (${code}): ${output}`)));
  });
  return { child, url, output: () => output };
}

describe.runIf(server !== undefined)(
  'behalf serve, the library and job workers as a role without DDL rights (Postgres)',
  () => {
    const role = `behalf_app_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    let db: TestDatabase;
    let roleUrl: string;
    let emulator: RunningEmulator;
    let dir: string;
    let env: Record<string, string>;
    let instance: { child: ChildProcess; url: string; output: () => string } | undefined;
    let library: Behalf | undefined;
    let apiKey: string;

    /** SQL as the role behalf serves with. */
    async function asRole(text: string): Promise<pg.QueryResult> {
      const client = new pg.Client({ connectionString: roleUrl });
      await client.connect();
      try {
        return await client.query(text);
      } finally {
        await client.end();
      }
    }

    beforeAll(async () => {
      db = await createTestDatabase(server!, 'no_ddl');
      // Migrated by the owner (the test server's superuser), as a deploy step would.
      const migrated = await behalfCommand(['migrate'], { BEHALF_DATABASE_URL: db.url });
      expect(migrated.stderr).toBe('');
      expect(migrated.code).toBe(0);

      await db.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
      // Nothing by default: PUBLIC may otherwise connect, make temporary tables, and (before
      // Postgres 15) create in the public schema.
      await db.query(`REVOKE ALL ON DATABASE ${db.name} FROM PUBLIC`);
      await db.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
      await db.query(`GRANT CONNECT ON DATABASE ${db.name} TO ${role}`);
      await db.query(`GRANT USAGE ON SCHEMA public, behalf_jobs TO ${role}`);
      await db.query(
        `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public, behalf_jobs TO ${role}`,
      );
      await db.query(`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public, behalf_jobs TO ${role}`);
      await db.query(`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public, behalf_jobs TO ${role}`);
      const url = new URL(db.url);
      url.username = role;
      url.password = password;
      roleUrl = url.href;

      emulator = await startEmulator();
      dir = await mkdtemp(join(tmpdir(), 'behalf-noddl-'));
      await emulator.writeClientSecret(join(dir, 'client_secret.json'));
      env = {
        BEHALF_DATABASE_URL: roleUrl,
        BEHALF_CLIENT_SECRET_FILE: join(dir, 'client_secret.json'),
        BEHALF_APP_CLIENT_IDS: Object.values(emulator.clients.apps).join(','),
        BEHALF_GOOGLE_DISCOVERY_URL: `${emulator.url}/.well-known/openid-configuration`,
        BEHALF_GOOGLE_API_URL: emulator.url,
        BEHALF_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
      };
    }, 60_000);

    afterAll(async () => {
      await library?.close();
      if (instance !== undefined && instance.child.exitCode === null) {
        const exited = new Promise((resolve) => instance!.child.once('exit', resolve));
        instance.child.kill('SIGTERM');
        await exited;
      }
      await emulator?.close();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
      await db?.drop();
      if (server !== undefined) {
        const admin = new pg.Client({ connectionString: server });
        await admin.connect();
        try {
          await admin.query(`DROP ROLE IF EXISTS ${role}`);
        } finally {
          await admin.end();
        }
      }
    }, 60_000);

    it('really has no DDL rights', async () => {
      for (const statement of [
        'CREATE TABLE public.ddl_probe (a int)',
        'CREATE TABLE behalf_jobs.ddl_probe (a int)',
        'CREATE TEMPORARY TABLE ddl_probe (a int)',
        'CREATE SCHEMA ddl_probe',
        'CREATE INDEX ddl_probe ON grants (updated_at)',
        'ALTER TABLE grants ADD COLUMN ddl_probe int',
        'DROP TABLE api_keys',
      ]) {
        await expect(asRole(statement), statement).rejects.toMatchObject({ code: '42501' });
      }
      // ...and can use behalf's tables.
      expect((await asRole('SELECT count(*)::int AS n FROM grants')).rows[0]).toEqual({ n: 0 });
    });

    it('serves: an API key, sign-in, access tokens, sign-out, deleting a user, a security event', async () => {
      const created = await behalfCommand(['keys', 'create-api-key', '--name', 'no-ddl test'], env);
      expect(created.stderr).toBe('');
      expect(created.code).toBe(0);
      apiKey = created.stdout.trim().split('\n').at(-1)!;

      instance = await serve(env);
      const service = (method: string, path: string) =>
        fetch(`${instance!.url}${path}`, { method, headers: { authorization: `Bearer ${apiKey}` } });
      const signIn = async () => {
        const { sub } = (await (
          await fetch(
            `${emulator.url}/emulator/users`,
            json({ email: `noddl-${randomBytes(3).toString('hex')}@example.com` }),
          )
        ).json()) as {
          sub: string;
        };
        const { code } = (await (
          await fetch(
            `${emulator.url}/emulator/codes`,
            json({ sub, client_id: emulator.clients.apps.ios, scope: SCOPES }),
          )
        ).json()) as {
          code: string;
        };
        const response = await fetch(`${instance!.url}/v1/google/signin`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-requested-with': 'XMLHttpRequest' },
          body: JSON.stringify({ code }),
        });
        expect(response.status).toBe(201);
        return sub;
      };

      const first = await signIn();
      const token = await service('POST', `/v1/users/${first}/access-token`);
      expect(token.status).toBe(200);
      expect(((await token.json()) as { access_token: string }).access_token).toMatch(/^ya29\./);
      // A refresh (the lease, the compare-and-set, the change notification) works too.
      await fetch(`${emulator.url}/emulator/access-tokens/expire`, json({ sub: first }));
      expect((await service('GET', `/v1/users/${first}/google/drive/v3/files/appDataFolder`)).status).toBe(
        200,
      );
      expect((await service('POST', `/v1/users/${first}/sign-out`)).status).toBe(200);
      expect((await service('POST', `/v1/users/${first}/access-token`)).status).toBe(409);

      const second = await signIn();
      expect((await service('DELETE', `/v1/users/${second}`)).status).toBe(200);
      expect((await service('GET', `/v1/users/${second}`)).status).toBe(404);

      const third = await signIn();
      const pushed = (await (
        await fetch(
          `${emulator.url}/emulator/risc/events`,
          json({ receiver_url: `${instance.url}/v1/google/risc`, event: 'sessions-revoked', sub: third }),
        )
      ).json()) as { receiver_status: number };
      expect(pushed.receiver_status).toBe(202);
      expect(await (await service('GET', `/v1/users/${third}`)).json()).toMatchObject({
        grant: { status: 'revoked' },
        security: { state: 'sessions_revoked' },
      });
      expect(instance.output()).not.toMatch(/"level":50|42501|permission denied/i);
    }, 60_000);

    it('runs jobs from the library, and deleting a user cancels their queued job', async () => {
      library = await createBehalf({
        clientSecretFile: env.BEHALF_CLIENT_SECRET_FILE!,
        appClientIds: Object.values(emulator.clients.apps),
        databaseUrl: roleUrl,
        googleDiscoveryUrl: env.BEHALF_GOOGLE_DISCOVERY_URL!,
        googleApiUrl: emulator.url,
        encryptionKeys: env.BEHALF_ENCRYPTION_KEYS!,
        fetch: loopbackFetch,
        request: loopbackRequest,
        logger: pino({ level: 'silent' }),
      });
      const { code } = (await (
        await fetch(
          `${emulator.url}/emulator/codes`,
          json({
            sub: (
              (await (
                await fetch(
                  `${emulator.url}/emulator/users`,
                  json({ email: `noddl-job-${randomBytes(3).toString('hex')}@example.com` }),
                )
              ).json()) as { sub: string }
            ).sub,
            client_id: emulator.clients.apps.ios,
            scope: SCOPES,
          }),
        )
      ).json()) as { code: string };
      const { user } = await library.signIn({ code });

      const runner = library.createJobRunner({ concurrency: 1, pollIntervalMs: 100 });
      try {
        runner.define({
          name: 'count-appdata-files',
          run: async ({ fetch }) => {
            const listed = (await (
              await fetch(`${emulator.url}/drive/v3/files?spaces=appDataFolder`)
            ).json()) as { files: unknown[] };
            return { files: listed.files.length };
          },
        });
        const queues = async () =>
          (await db.query('SELECT name FROM behalf_jobs.queue ORDER BY name')).rows.map(
            (row: { name: string }) => row.name,
          );
        expect(await queues()).toEqual([]);
        runner.start();
        const run = await runner.enqueue('count-appdata-files', user.sub);
        // pg-boss created the queue (a partition table) through create_queue, as its owner.
        expect(await queues()).toEqual(['count-appdata-files']);
        expect(await runner.whenIdle(30_000)).toBe(true);
        expect(await runner.getRun(run.id)).toMatchObject({
          status: 'done',
          result: { files: 0 },
          errorCode: null,
        });

        // A run waiting in the queue (in an hour) when its user is deleted is cancelled with them.
        const queued = await runner.enqueue('count-appdata-files', user.sub, {}, { delayMs: 3_600_000 });
        expect(
          (
            await db.query(`SELECT count(*)::int AS n FROM behalf_jobs.job WHERE data->>'runId' = $1`, [
              queued.id,
            ])
          ).rows[0],
        ).toEqual({ n: 1 });
        await library.deleteUser(user.sub);
        expect(await runner.getRun(queued.id)).toBeNull();
        expect(
          (
            await db.query(`SELECT count(*)::int AS n FROM behalf_jobs.job WHERE data->>'runId' = $1`, [
              queued.id,
            ])
          ).rows[0],
        ).toEqual({ n: 0 });
        expect(
          (await db.query('SELECT count(*)::int AS n FROM job_runs WHERE sub = $1', [user.sub])).rows[0],
        ).toEqual({ n: 0 });
      } finally {
        await runner.stop();
      }
    }, 60_000);
  },
);

function json(body: unknown): RequestInit {
  return { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}
