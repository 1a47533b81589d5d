/**
 * The emulated Google that several behalf processes or runtimes of one test share, and the
 * settings that point behalf at it (everything but the database). The emulator runs in the test
 * process on a random port; behalf processes reach it over loopback.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmulator, type RunningEmulator } from '../../src/emulator/index.js';

export const DRIVE_APPDATA = 'https://www.googleapis.com/auth/drive.appdata';
export const SIGNIN_SCOPES = `openid email profile ${DRIVE_APPDATA}`;
/** A Drive call every signed-in test user may make. */
export const DRIVE_LIST_PATH = '/drive/v3/files?spaces=appDataFolder';

export type SecurityEventName =
  | 'sessions-revoked'
  | 'tokens-revoked'
  | 'token-revoked'
  | 'account-disabled'
  | 'account-enabled'
  | 'account-purged'
  | 'account-credential-change-required';

export interface GoogleWorld {
  emulator: RunningEmulator;
  /** A temporary folder (the client secret file is in it), removed by close(). */
  dir: string;
  /** BEHALF_* settings for `behalf serve` and the other commands; add BEHALF_DATABASE_URL. */
  env: Record<string, string>;
  /** The same settings as `createBehalf` options; add databaseUrl. */
  library: {
    clientSecretFile: string;
    appClientIds: string[];
    googleDiscoveryUrl: string;
    googleApiUrl: string;
    encryptionKeys: string;
    requiredScopes: string[];
  };
  /** Call the emulator's control API; a non-2xx answer throws. */
  control<T = any>(method: string, path: string, body?: unknown): Promise<T>;
  /** A new test user at Google. */
  newUser(): Promise<string>;
  /** A server auth code for `sub`, as the iOS app gets it from the Sign-In SDK. */
  mintCode(sub: string, options?: { prompt?: string }): Promise<string>;
  /** Sign `sub` in through the behalf server at `behalfUrl`, as an app does; the response. */
  signIn(behalfUrl: string, code: string): Promise<Response>;
  /** A new user signed in through the behalf server at `behalfUrl` (201 expected). */
  signedInUser(behalfUrl: string): Promise<string>;
  /** Google's RISC service pushing one event about `sub` to the behalf server at `behalfUrl`. */
  pushSecurityEvent(
    behalfUrl: string,
    event: SecurityEventName,
    sub: string,
  ): Promise<{ delivered: boolean; receiver_status: number }>;
  /** The last token of `type` Google issued to `sub`. */
  lastIssued(sub: string, type: 'access_token' | 'refresh_token'): Promise<string>;
  /** How many Drive calls Google has answered so far (the emulator's api_calls). */
  driveCalls(): Promise<number>;
  close(): Promise<void>;
}

export async function startGoogleWorld(): Promise<GoogleWorld> {
  const emulator = await startEmulator();
  const dir = await mkdtemp(join(tmpdir(), 'behalf-world-'));
  const clientSecretFile = join(dir, 'client_secret.json');
  await emulator.writeClientSecret(clientSecretFile);
  const { apps } = emulator.clients;
  const library = {
    clientSecretFile,
    appClientIds: [apps.ios, apps.android, apps.web],
    googleDiscoveryUrl: `${emulator.url}/.well-known/openid-configuration`,
    googleApiUrl: emulator.url,
    encryptionKeys: `k1:${randomBytes(32).toString('base64')}`,
    requiredScopes: SIGNIN_SCOPES.split(' '),
  };
  const env = {
    BEHALF_CLIENT_SECRET_FILE: library.clientSecretFile,
    BEHALF_APP_CLIENT_IDS: library.appClientIds.join(','),
    BEHALF_GOOGLE_DISCOVERY_URL: library.googleDiscoveryUrl,
    BEHALF_GOOGLE_API_URL: library.googleApiUrl,
    BEHALF_ENCRYPTION_KEYS: library.encryptionKeys,
    BEHALF_REQUIRED_SCOPES: library.requiredScopes.join(' '),
    BEHALF_SIGNIN_RATE_LIMIT: '100000',
  };

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
  let users = 0;
  const newUser = async () =>
    (
      await control<{ sub: string }>('POST', '/emulator/users', {
        email: `world-${++users}-${randomBytes(4).toString('hex')}@example.com`,
        name: 'Test User',
      })
    ).sub;
  const mintCode = async (sub: string, options: { prompt?: string } = {}) =>
    (
      await control<{ code: string }>('POST', '/emulator/codes', {
        sub,
        client_id: apps.ios,
        scope: SIGNIN_SCOPES,
        ...(options.prompt === undefined ? {} : { prompt: options.prompt }),
      })
    ).code;
  const signIn = (behalfUrl: string, code: string) =>
    fetch(`${behalfUrl}/v1/google/signin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-requested-with': 'XMLHttpRequest' },
      body: JSON.stringify({ code }),
    });

  return {
    emulator,
    dir,
    env,
    library,
    control,
    newUser,
    mintCode,
    signIn,
    async signedInUser(behalfUrl) {
      const sub = await newUser();
      const response = await signIn(behalfUrl, await mintCode(sub));
      if (response.status !== 201)
        throw new Error(`sign-in failed: ${response.status} ${await response.text()}`);
      return sub;
    },
    pushSecurityEvent: (behalfUrl, event, sub) =>
      control('POST', '/emulator/risc/events', { receiver_url: `${behalfUrl}/v1/google/risc`, event, sub }),
    async lastIssued(sub, type) {
      const { tokens } = await control<{ tokens: Array<{ type: string; value: string; sub: string }> }>(
        'GET',
        '/emulator/tokens',
      );
      const last = tokens.filter((t) => t.sub === sub && t.type === type).at(-1);
      if (last === undefined) throw new Error(`Google issued no ${type} to ${sub}`);
      return last.value;
    },
    driveCalls: async () => (await control<{ api_calls: number }>('GET', '/emulator/stats')).api_calls,
    async close() {
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
