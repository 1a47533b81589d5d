import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULT_DATA_DIR } from '../config/config.js';
import type { Demo } from '../demo/index.js';
import { BehalfError } from '../errors.js';
import { SCOPES } from '../google/scopes.js';
import { createApiKey, verifyApiKey, type Store } from '../vault/index.js';

export interface LocalGoogle {
  url: string;
  close(): Promise<void>;
}

export const LOCAL_API_KEY_FILE = join(DEFAULT_DATA_DIR, 'api-key');
export const LOCAL_CLIENT_SECRET_FILE = join(DEFAULT_DATA_DIR, 'client_secret.json');
/** What local mode's users grant: sign-in, and the Drive app folder the photo job works in. */
export const LOCAL_SCOPES = ['openid', 'email', 'profile', SCOPES.driveAppdata] as const;
const DEFAULT_DEMO_PORT = 8090;

/**
 * Local mode's demo web app, on a port of its own: `BEHALF_DEMO_PORT` (`--demo-port`) when given,
 * else 8090, or any free port when 8090 is taken. It listens before the emulator starts, because
 * its origins become JavaScript origins of the emulator's web client.
 */
export async function startLocalDemo(setting: string | undefined): Promise<Demo> {
  const port = setting?.trim() === '' ? undefined : setting?.trim();
  if (port !== undefined && (!/^\d{1,5}$/.test(port) || Number(port) > 65_535)) {
    throw new BehalfError('CONFIG_INVALID', 'BEHALF_DEMO_PORT: must be a whole number from 0 to 65535.');
  }
  // Loaded here, not with this module: `behalf serve` in production never runs the demo.
  const { startDemo } = await import('../demo/index.js');
  try {
    return await startDemo({
      port: port === undefined ? DEFAULT_DEMO_PORT : Number(port),
      anyPortIfTaken: port === undefined,
    });
  } catch (error) {
    throw new BehalfError(
      'CONFIG_INVALID',
      `BEHALF_DEMO_PORT: the demo page could not listen on 127.0.0.1:${port ?? DEFAULT_DEMO_PORT} (${(error as NodeJS.ErrnoException).code ?? 'error'}); pick another port.`,
    );
  }
}

/**
 * Local mode's Google: the emulator in this process, its client secret written where the server
 * reads it, and the server's Google settings defaulted to it (anything set explicitly wins).
 * `javascriptOrigins` (the demo page's) join the web client's JavaScript origins, and so the
 * origins behalf lets POST codes unless BEHALF_ALLOWED_ORIGINS says otherwise.
 */
export async function startLocalGoogle(
  env: Record<string, string | undefined>,
  port: string,
  javascriptOrigins: string[] = [],
): Promise<LocalGoogle> {
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65_535) {
    throw new BehalfError('CONFIG_INVALID', 'BEHALF_EMULATOR_PORT: must be a whole number from 0 to 65535.');
  }
  // Loaded here, not with this module: `behalf serve` in production never runs the emulator.
  const { startEmulator } = await import('../emulator/index.js');
  let emulator;
  try {
    emulator = await startEmulator({ port: Number(port), host: '127.0.0.1', javascriptOrigins });
  } catch (error) {
    throw new BehalfError(
      'CONFIG_INVALID',
      `BEHALF_EMULATOR_PORT: the emulator could not listen on 127.0.0.1:${port} (${(error as NodeJS.ErrnoException).code ?? 'error'}); pick another port.`,
    );
  }
  await mkdir(DEFAULT_DATA_DIR, { recursive: true, mode: 0o700 });
  await emulator.writeClientSecret(LOCAL_CLIENT_SECRET_FILE);
  const { apps } = emulator.clients;
  env.BEHALF_CLIENT_SECRET_FILE ??= LOCAL_CLIENT_SECRET_FILE;
  env.BEHALF_APP_CLIENT_IDS ??= [apps.ios, apps.android, apps.web].join(',');
  env.BEHALF_GOOGLE_DISCOVERY_URL ??= `${emulator.url}/.well-known/openid-configuration`;
  env.BEHALF_GOOGLE_API_URL ??= emulator.url;
  env.BEHALF_REQUIRED_SCOPES ??= LOCAL_SCOPES.join(' ');
  return { url: emulator.url, close: () => emulator.close() };
}

/** Local mode keeps one service API key in a 0600 file so the try-* commands can use it. */
export async function ensureLocalApiKey(store: Store): Promise<string> {
  const path = resolve(LOCAL_API_KEY_FILE);
  const existing = await readFile(path, 'utf8').catch(() => undefined);
  if (existing !== undefined && (await verifyApiKey(store, existing.trim()))) return path;
  const { key } = await createApiKey(store, 'local mode');
  await writeFile(path, `${key}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
  return path;
}
