import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { loopbackFetch } from '../support/no-network.js';

const CLIENT = '614071230985-0123456789abcdef0123456789abcdef.apps.googleusercontent.com';
const KEY = `k1:${Buffer.alloc(32, 7).toString('base64')}`;

/** Issue 3: bad configuration stops start-up with one clear message naming the setting. */
describe('configuration', () => {
  let dir: string;
  let secretFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-config-'));
    secretFile = join(dir, 'client_secret.json');
    await writeFile(
      secretFile,
      JSON.stringify({
        web: {
          client_id: CLIENT,
          client_secret: 'test-secret',
          redirect_uris: ['https://app.example.com/cb'],
          javascript_origins: ['https://app.example.com'],
        },
      }),
    );
  });

  const load = (env: Record<string, string>, mode: 'local' | 'production' = 'production') =>
    loadConfig({
      mode,
      env: { BEHALF_CLIENT_SECRET_FILE: secretFile, BEHALF_ENCRYPTION_KEYS: KEY, ...env },
      cwd: dir,
    });

  async function failure(promise: Promise<unknown>): Promise<string> {
    const error = (await promise.then(
      () => undefined,
      (e: unknown) => e,
    )) as { code?: string; message?: string } | undefined;
    expect(error?.code).toBe('CONFIG_INVALID');
    return error?.message ?? '';
  }

  it("reads Google's client secret file and the app client ids", async () => {
    const config = await load({ BEHALF_APP_CLIENT_IDS: `${CLIENT.replace('0123', '9999')}, ` });
    expect(config.google.clientId).toBe(CLIENT);
    expect(config.google.appClientIds).toHaveLength(1);
    expect(config.google.redirectUris).toEqual(['https://app.example.com/cb']);
    expect(config.allowedOrigins).toEqual(['https://app.example.com']);
    expect(config.port).toBe(8080);
    expect(config.databaseUrl).toBe('sqlite:.behalf/behalf.db');
  });

  // Issue 13: BEHALF_ALLOWED_ORIGINS is the list, not an addition to the client's JavaScript origins.
  it("BEHALF_ALLOWED_ORIGINS replaces the client's JavaScript origins (normalised, deduplicated)", async () => {
    const config = await load({
      BEHALF_ALLOWED_ORIGINS: 'https://Web.example.com/, https://web.example.com,http://localhost:5173',
    });
    expect(config.allowedOrigins).toEqual(['https://web.example.com', 'http://localhost:5173']);
  });

  it('names a missing client secret file', async () => {
    expect(await failure(load({ BEHALF_CLIENT_SECRET_FILE: join(dir, 'nope.json') }))).toMatch(
      /^BEHALF_CLIENT_SECRET_FILE: no file at/,
    );
  });

  it('names a malformed client secret file, and a Desktop client', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"web": {');
    expect(await failure(load({ BEHALF_CLIENT_SECRET_FILE: bad }))).toMatch(
      /BEHALF_CLIENT_SECRET_FILE: .* is not valid JSON/,
    );
    await writeFile(bad, JSON.stringify({ installed: { client_id: CLIENT, client_secret: 'x' } }));
    expect(await failure(load({ BEHALF_CLIENT_SECRET_FILE: bad }))).toMatch(/Desktop/);
    await writeFile(bad, JSON.stringify({ web: { client_id: CLIENT } }));
    expect(await failure(load({ BEHALF_CLIENT_SECRET_FILE: bad }))).toMatch(/"web" shape/);
  });

  it('requires encryption keys in production, and names a key of the wrong length', async () => {
    expect(
      await failure(
        loadConfig({ mode: 'production', env: { BEHALF_CLIENT_SECRET_FILE: secretFile }, cwd: dir }),
      ),
    ).toMatch(/^BEHALF_ENCRYPTION_KEYS: is required in production/);
    // Checked with the other settings, before anything is opened.
    const message = await failure(
      load({ BEHALF_ENCRYPTION_KEYS: `short:${Buffer.alloc(16).toString('base64')}` }),
    );
    expect(message).toMatch(/BEHALF_ENCRYPTION_KEYS: key 'short' is 16 bytes/);
    expect(message).not.toContain(Buffer.alloc(16).toString('base64'));
  });

  it('names an unopenable database', async () => {
    const blocker = join(dir, 'file-not-dir');
    await writeFile(blocker, 'x');
    const config = await load({ BEHALF_DATABASE_URL: `sqlite:${join(blocker, 'db.sqlite')}` });
    const error = (await createRuntime(config, { fetch: loopbackFetch }).catch((e: unknown) => e)) as {
      code: string;
      message: string;
    };
    expect(['STORE_UNAVAILABLE', 'CONFIG_INVALID']).toContain(error.code);
    expect(error.message).toMatch(/BEHALF_DATABASE_URL/);
  });

  it('names bad ports, URLs, origins, TLS halves and booleans', async () => {
    expect(await failure(load({ BEHALF_PORT: '99999' }))).toMatch(/^BEHALF_PORT:/);
    expect(await failure(load({ BEHALF_GOOGLE_DISCOVERY_URL: 'http://accounts.example.com/x' }))).toMatch(
      /^BEHALF_GOOGLE_DISCOVERY_URL:/,
    );
    expect(await failure(load({ BEHALF_ALLOWED_ORIGINS: 'https://app.example.com/path' }))).toMatch(
      /^BEHALF_ALLOWED_ORIGINS:/,
    );
    expect(await failure(load({ BEHALF_TLS_CERT: 'cert.pem' }))).toMatch(
      /BEHALF_TLS_CERT and BEHALF_TLS_KEY go together/,
    );
    expect(await failure(load({ BEHALF_TRUST_PROXY: 'maybe' }))).toMatch(/^BEHALF_TRUST_PROXY:/);
    expect(await failure(load({ BEHALF_APP_CLIENT_IDS: 'not-a-client' }))).toMatch(/^BEHALF_APP_CLIENT_IDS:/);
  });

  it('reports every problem at once, one line each, naming its setting (issue 12)', async () => {
    const message = await failure(
      load({
        BEHALF_PORT: '99999',
        BEHALF_TRUST_PROXY: 'maybe',
        BEHALF_ENCRYPTION_KEYS: `k1:${Buffer.alloc(5, 1).toString('base64')}`,
        BEHALF_DATABASE_URL: 'mysql://db.internal/behalf',
        BEHALF_CLIENT_SECRET_FILE: join(dir, 'nope.json'),
        BEHALF_METRICS_TOKEN: 'short',
      }),
    );
    const lines = message.split('\n');
    expect(lines.map((line) => line.slice(0, line.indexOf(':')))).toEqual([
      'BEHALF_ENCRYPTION_KEYS',
      'BEHALF_DATABASE_URL',
      'BEHALF_PORT',
      'BEHALF_CLIENT_SECRET_FILE',
      'BEHALF_TRUST_PROXY',
      'BEHALF_METRICS_TOKEN',
    ]);
    expect(lines[0]).toMatch(/key 'k1' is 5 bytes/);
  });

  it("refuses a local emulator's client secret file without a discovery URL, naming the one to set, so nothing reaches real Google (issue 12)", async () => {
    const emulatorFile = join(dir, 'emulator_client_secret.json');
    await writeFile(
      emulatorFile,
      JSON.stringify({
        web: {
          client_id: CLIENT,
          client_secret: 'emulated',
          token_uri: 'http://127.0.0.1:8089/token',
          auth_uri: 'http://127.0.0.1:8089/o/oauth2/v2/auth',
        },
      }),
    );
    expect(await failure(load({ BEHALF_CLIENT_SECRET_FILE: emulatorFile }))).toBe(
      "BEHALF_GOOGLE_DISCOVERY_URL: is not set, but the client secret file is a local Google emulator's (its token_uri is http://127.0.0.1:8089/token): " +
        'set it to http://127.0.0.1:8089/.well-known/openid-configuration, or use --local.',
    );
    const config = await load({
      BEHALF_CLIENT_SECRET_FILE: emulatorFile,
      BEHALF_GOOGLE_DISCOVERY_URL: 'http://127.0.0.1:8089/.well-known/openid-configuration',
    });
    expect(config.google.discoveryUrl).toBe('http://127.0.0.1:8089/.well-known/openid-configuration');
  });

  it('local mode generates an owner-only key file and says so; a world-readable one is refused', async () => {
    const keyFile = join(dir, 'local', 'keys');
    const config = await loadConfig({
      mode: 'local',
      env: {
        BEHALF_CLIENT_SECRET_FILE: secretFile,
        BEHALF_KEY_FILE: keyFile,
        BEHALF_DATABASE_URL: `sqlite:${join(dir, 'local.db')}`,
      },
      cwd: dir,
    });
    const first = await createRuntime(config, { fetch: loopbackFetch });
    expect(first.createdKeyFile).toBe(true);
    await first.behalf.close();
    const second = await createRuntime(config, { fetch: loopbackFetch });
    expect(second.createdKeyFile).toBe(false);
    await second.behalf.close();
    await chmod(keyFile, 0o644);
    expect(await failure(createRuntime(config, { fetch: loopbackFetch }))).toMatch(/BEHALF_KEY_FILE/);
  });
});
