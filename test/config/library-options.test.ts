import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { loadLibraryConfig } from '../../src/config/index.js';
import { createBehalf, isBehalfError, type BehalfOptions } from '../../src/index.js';

const CLIENT = '614071230985-0123456789abcdef0123456789abcdef.apps.googleusercontent.com';
const APP = '614071230985-ios0123456789abcdef0123456789ab.apps.googleusercontent.com';
const KEY = `k1:${Buffer.alloc(32, 7).toString('base64')}`;
const KEY2 = `k2:${Buffer.alloc(32, 9).toString('base64')}`;

/** Issue 12, point 5: createBehalf's options are a typed API over loadConfig's one set of checks. */
describe('createBehalf options', () => {
  let dir: string;
  let secretFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-options-'));
    secretFile = join(dir, 'client_secret.json');
    await writeFile(
      secretFile,
      JSON.stringify({ web: { client_id: CLIENT, client_secret: 'test-secret', redirect_uris: [] } }),
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function problems(options: Record<string, unknown>): Promise<string[]> {
    const error = await loadLibraryConfig(options).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBehalfError(error) && error.code).toBe('CONFIG_INVALID');
    return (error as Error).message.split('\n');
  }

  it('takes numbers as numbers, durations in ms, lists as arrays, booleans as booleans', async () => {
    const config = await loadLibraryConfig({
      clientSecretFile: secretFile,
      appClientIds: [APP],
      redirectUris: ['https://app.example.com/a,b'],
      requiredScopes: ['email', 'https://www.googleapis.com/auth/drive.appdata'],
      encryptionKeys: [KEY, KEY2],
      googleDiscoveryUrl: 'http://127.0.0.1:8089/.well-known/openid-configuration',
      googleApiUrl: 'http://127.0.0.1:8089/',
      googleTimeoutMs: 5000,
      refreshLeaseMs: 20_000,
      hostedDomain: 'Example.com',
      webhookAllowPrivate: true,
      logLevel: 'warn',
      databaseUrl: 'sqlite::memory:',
    });
    expect(config.google).toMatchObject({
      appClientIds: [APP],
      // A list given as an array is not split again: a comma inside an entry stays.
      redirectUris: ['https://app.example.com/a,b'],
      requiredScopes: [
        'https://www.googleapis.com/auth/userinfo.email',
        'https://www.googleapis.com/auth/drive.appdata',
      ],
      discoveryUrl: 'http://127.0.0.1:8089/.well-known/openid-configuration',
      apiUrl: 'http://127.0.0.1:8089',
      timeoutMs: 5000,
      hostedDomain: 'example.com',
    });
    expect(config.encryptionKeys).toBe(`${KEY},${KEY2}`);
    expect(config.refreshLeaseMs).toBe(20_000);
    expect(config.webhooks.allowPrivate).toBe(true);
    expect(config.logLevel).toBe('warn');
    expect(config.mode).toBe('production');
  });

  it('refuses every bad option at once, one line each, named as the caller wrote it', async () => {
    const lines = await problems({
      clientSecretFile: secretFile,
      encryptionKeys: KEY,
      googleTimeoutMs: 50,
      refreshLeaseMs: '15000ms',
      appClientIds: ['not-a-client-id'],
      googleApiUrl: 'http://api.example.com',
      webhookAllowPrivate: 'maybe',
      requiredScopes: [42],
      hostedDomain: 7,
      mode: 'staging',
    });
    expect(lines).toEqual(
      expect.arrayContaining([
        'mode: must be "production" or "local".',
        'googleTimeoutMs: must be a whole number of milliseconds from 100 to 120000.',
        'refreshLeaseMs: must be a whole number of milliseconds from 3000 to 300000.',
        'appClientIds: "not-a-client-id" is not a Google OAuth client id.',
        'googleApiUrl: must be an https URL (http is allowed only on loopback, for the emulator).',
        'webhookAllowPrivate: must be true or false.',
        'requiredScopes: must be a list of strings.',
        'hostedDomain: must be a string.',
      ]),
    );
    expect(lines).toHaveLength(8);
    expect(lines.join('\n')).not.toMatch(/BEHALF_/);
  });

  it('names values of the wrong type: a number for a list, a string for a boolean, NaN for a duration', async () => {
    const lines = await problems({
      clientSecretFile: secretFile,
      encryptionKeys: KEY,
      appClientIds: 3,
      googleTimeoutMs: Number.NaN,
      webhookAllowPrivate: null,
    });
    expect(lines).toEqual([
      'appClientIds: must be a list of strings.',
      'googleTimeoutMs: must be a whole number of milliseconds from 100 to 120000.',
      'webhookAllowPrivate: must be true or false.',
    ]);
  });

  it('refuses discoveryUrl and apiUrl (the names are googleDiscoveryUrl, googleApiUrl), server-only settings and unknown names', async () => {
    const lines = await problems({
      clientSecretFile: secretFile,
      encryptionKeys: KEY,
      discoveryUrl: 'http://127.0.0.1:1/.well-known/openid-configuration',
      apiUrl: 'http://127.0.0.1:1',
      port: 8080,
      allowedOrigins: ['https://app.example.com'],
      metricsToken: 'x'.repeat(32),
      clientSecretFil: secretFile,
    });
    expect(lines).toEqual([
      'discoveryUrl: is not an option: the discovery URL is googleDiscoveryUrl.',
      'apiUrl: is not an option: the Google APIs base URL is googleApiUrl.',
      'port: is a server setting (behalf serve), not a library option.',
      'allowedOrigins: is a server setting (behalf serve), not a library option.',
      'metricsToken: is a server setting (behalf serve), not a library option.',
      'clientSecretFil: is not an option of createBehalf.',
    ]);
  });

  it('names missing settings by their option names, in production', async () => {
    expect(await problems({})).toEqual([
      expect.stringMatching(/^encryptionKeys: is required in production/),
      expect.stringMatching(/^clientSecretFile: is not set\..*\(or set clientId and clientSecret\)\.$/),
    ]);
  });

  it('createBehalf throws the same error before opening anything', async () => {
    const error = await createBehalf({
      clientSecretFile: secretFile,
      encryptionKeys: KEY,
      googleTimeoutMs: 1e9,
      databaseUrl: `sqlite:${join(dir, 'never-created.db')}`,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBehalfError(error) && error.code).toBe('CONFIG_INVALID');
    expect((error as Error).message).toBe(
      'googleTimeoutMs: must be a whole number of milliseconds from 100 to 120000.',
    );
    // Passed through JavaScript, not TypeScript: a non-object is refused plainly.
    await expect(createBehalf(undefined as unknown as BehalfOptions)).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: 'createBehalf takes an object of options.',
    });
  });

  it('types: numbers, arrays and booleans compile; strings for them, discoveryUrl and server settings do not', () => {
    expectTypeOf<BehalfOptions['googleTimeoutMs']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<BehalfOptions['refreshLeaseMs']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<BehalfOptions['appClientIds']>().toEqualTypeOf<readonly string[] | undefined>();
    expectTypeOf<BehalfOptions['requiredScopes']>().toEqualTypeOf<readonly string[] | undefined>();
    expectTypeOf<BehalfOptions['webhookAllowPrivate']>().toEqualTypeOf<boolean | undefined>();
    expectTypeOf<BehalfOptions['discoveryUrl']>().toEqualTypeOf<undefined>();
    expectTypeOf<BehalfOptions['apiUrl']>().toEqualTypeOf<undefined>();
    expectTypeOf<BehalfOptions['port']>().toEqualTypeOf<undefined>();
    expectTypeOf<BehalfOptions['tlsCert']>().toEqualTypeOf<undefined>();
    expectTypeOf<BehalfOptions['metricsToken']>().toEqualTypeOf<undefined>();
    expectTypeOf<BehalfOptions['allowedOrigins']>().toEqualTypeOf<undefined>();
    expectTypeOf({ googleTimeoutMs: 5000, appClientIds: [APP] }).toMatchTypeOf<BehalfOptions>();
    // @ts-expect-error a duration is a number of milliseconds, not a string
    const asString: BehalfOptions = { googleTimeoutMs: '5000' };
    // @ts-expect-error the discovery URL's option is googleDiscoveryUrl
    const oldName: BehalfOptions = { discoveryUrl: 'https://accounts.google.com' };
    // @ts-expect-error a library does not listen: port is a server setting
    const serverOnly: BehalfOptions = { port: 8080 };
    // @ts-expect-error lists are arrays
    const commaList: BehalfOptions = { appClientIds: 'a,b' };
    expect([asString, oldName, serverOnly, commaList]).toHaveLength(4);
  });
});
