import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { createRuntime, createServer, type BehalfRuntime } from '../../src/app.js';
import { OffsetClock } from '../../src/clock.js';
import { loadConfig, type BehalfConfig } from '../../src/config/index.js';
import { startEmulator, type RunningEmulator } from '../../src/emulator/index.js';
import { createLogger } from '../../src/logging.js';
import { createApiKey } from '../../src/vault/index.js';
import { migratePostgres } from '../../src/vault/index.js';
import { dumpDatabase } from './database-dump.js';
import { loopbackFetch, loopbackRequest } from './no-network.js';
import { requirePostgres } from './postgres.js';

export const DRIVE_APPDATA = 'https://www.googleapis.com/auth/drive.appdata';
export const SIGNIN_SCOPES = `openid email profile ${DRIVE_APPDATA}`;

export interface Harness {
  emulator: RunningEmulator;
  clock: OffsetClock;
  config: BehalfConfig;
  runtime: BehalfRuntime;
  server: FastifyInstance;
  /** behalf's base URL. */
  url: string;
  apiKey: string;
  dir: string;
  /**
   * Log lines behalf wrote (JSON strings), for leak scans: the production logger (createLogger,
   * with its redaction) at BEHALF_LOG_LEVEL, debug unless the options' env says otherwise.
   */
  logs: string[];
  /** Everything the database holds, as bytes (files for SQLite, rows for Postgres), for leak scans. */
  databaseDump(): Promise<Buffer[]>;
  /** Call the emulator's control API. */
  control<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T>;
  /** A test user and a fresh server auth code for them, as the iOS app would get it. */
  newUserWithCode(options?: {
    email?: string;
    scope?: string;
    platform?: 'ios' | 'android' | 'web';
    prompt?: string;
  }): Promise<{ sub: string; email: string; code: string }>;
  mintCode(
    sub: string,
    options?: { scope?: string; platform?: 'ios' | 'android' | 'web'; prompt?: string; redirectUri?: string },
  ): Promise<string>;
  /** A new test user who has signed in through behalf (first consent: offline access in place). */
  signedInUser(options?: { scope?: string }): Promise<string>;
  /** POST a code to behalf the way an app does. */
  signIn(code: string, extra?: Record<string, unknown>, headers?: Record<string, string>): Promise<Response>;
  /** Call behalf's service API with the harness's API key. */
  service(method: string, path: string, body?: unknown): Promise<Response>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  env?: Record<string, string>;
}

/** Which store the harness runs on: BEHALF_TEST_BACKEND=postgres runs the same tests on Postgres. */
export const TEST_BACKEND = process.env.BEHALF_TEST_BACKEND === 'postgres' ? 'postgres' : 'sqlite';

/** A fresh database for one harness: a SQLite file in its folder, or a new Postgres database. */
async function freshDatabase(
  dir: string,
): Promise<{ url: string; dump: () => Promise<Buffer[]>; drop: () => Promise<void> }> {
  if (TEST_BACKEND === 'sqlite') {
    const url = `sqlite:${join(dir, 'behalf.db')}`;
    return { url, dump: () => dumpDatabase(url), drop: async () => undefined };
  }
  // Unreachable Postgres fails here with the reason (the Postgres pass is skipped as a whole only
  // with BEHALF_TEST_SKIP_POSTGRES=1, see vitest.config.ts).
  const adminUrl = await requirePostgres();
  const name = `behalf_t_${randomBytes(5).toString('hex')}`;
  const url = adminUrl.replace(/\/[^/?]*(\?|$)/, `/${name}$1`);
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      return await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  await migratePostgres(url);
  return {
    url,
    dump: () => dumpDatabase(url),
    drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).then(() => undefined),
  };
}

/** behalf and the emulator, wired as in production but on random ports, with one shared clock. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const clock = new OffsetClock();
  const dir = await mkdtemp(join(tmpdir(), 'behalf-test-'));
  // First, so that an unreachable Postgres leaves nothing running behind its error.
  const database = await freshDatabase(dir).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  const emulator = await startEmulator({ clock });
  const secretFile = join(dir, 'client_secret.json');
  await emulator.writeClientSecret(secretFile);
  const { apps } = emulator.clients;
  const config = await loadConfig({
    mode: 'production',
    env: {
      BEHALF_PORT: '0',
      BEHALF_HOST: '127.0.0.1',
      BEHALF_DATABASE_URL: database.url,
      BEHALF_CLIENT_SECRET_FILE: secretFile,
      BEHALF_APP_CLIENT_IDS: [apps.ios, apps.android, apps.web].join(','),
      BEHALF_GOOGLE_DISCOVERY_URL: `${emulator.url}/.well-known/openid-configuration`,
      BEHALF_GOOGLE_API_URL: emulator.url,
      BEHALF_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
      BEHALF_REQUIRED_SCOPES: SIGNIN_SCOPES,
      BEHALF_ALLOWED_ORIGINS: 'https://app.example.com',
      BEHALF_SIGNIN_RATE_LIMIT: '100000',
      BEHALF_LOG_LEVEL: 'debug',
      ...options.env,
    },
  });
  const logs: string[] = [];
  // The logger `behalf serve` builds (createRuntime's default), writing here instead of stdout.
  const logger = createLogger(config.logLevel, { write: (line: string) => void logs.push(line) });
  const runtime = await createRuntime(config, {
    clock,
    logger,
    fetch: loopbackFetch,
    request: loopbackRequest,
  });
  const server = createServer(config, runtime);
  await server.listen({ port: 0, host: '127.0.0.1' });
  const address = server.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  const { key: apiKey } = await createApiKey(runtime.store, 'test');

  const control = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${emulator.url}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`emulator ${method} ${path} → ${response.status}: ${text}`);
    return (text === '' ? {} : JSON.parse(text)) as T;
  };
  const appClient = (platform: 'ios' | 'android' | 'web' = 'ios') => apps[platform];
  const mintCode: Harness['mintCode'] = async (sub, o = {}) => {
    const { code } = await control<{ code: string }>('POST', '/emulator/codes', {
      sub,
      client_id: appClient(o.platform),
      scope: o.scope ?? SIGNIN_SCOPES,
      ...(o.redirectUri === undefined ? {} : { redirect_uri: o.redirectUri }),
      ...(o.prompt === undefined ? {} : { prompt: o.prompt }),
    });
    return code;
  };
  let userCount = 0;
  const newUserWithCode: Harness['newUserWithCode'] = async (o = {}) => {
    const email = o.email ?? `user${++userCount}-${randomBytes(3).toString('hex')}@example.com`;
    const user = await control<{ sub: string }>('POST', '/emulator/users', {
      email,
      name: 'Test User',
      given_name: 'Test',
      family_name: 'User',
    });
    const code = await mintCode(user.sub, {
      ...(o.scope === undefined ? {} : { scope: o.scope }),
      ...(o.platform === undefined ? {} : { platform: o.platform }),
      ...(o.prompt === undefined ? {} : { prompt: o.prompt }),
      ...(o.platform === 'web' ? { redirectUri: 'postmessage' } : {}),
    });
    return { sub: user.sub, email, code };
  };
  const signIn: Harness['signIn'] = (code, extra = {}, headers = { 'x-requested-with': 'XMLHttpRequest' }) =>
    fetch(`${url}/v1/google/signin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ code, ...extra }),
    });
  const signedInUser: Harness['signedInUser'] = async (o = {}) => {
    const { sub, code } = await newUserWithCode(o.scope === undefined ? {} : { scope: o.scope });
    const response = await signIn(code);
    if (response.status !== 201)
      throw new Error(`sign-in failed: ${response.status} ${await response.text()}`);
    return sub;
  };
  const service: Harness['service'] = (method, path, body) =>
    fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  return {
    emulator,
    clock,
    config,
    runtime,
    server,
    url,
    apiKey,
    dir,
    logs,
    databaseDump: database.dump,
    control,
    newUserWithCode,
    mintCode,
    signIn,
    signedInUser,
    service,
    close: async () => {
      await server.close();
      await runtime.behalf.close();
      await emulator.close();
      await database.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
