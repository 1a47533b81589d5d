import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BehalfError } from '../errors.js';
import { GOOGLE_API_URL, GOOGLE_DISCOVERY_URL, isAcceptableEndpoint } from '../google/discovery.js';
import { normalizeScopes } from '../google/scopes.js';
import { readClientSecretFile } from './client-secret.js';

/** `local`: a laptop, generated keys allowed. `production`: every secret must be given. */
export type Mode = 'local' | 'production';

/** What opening the vault needs: the database and the encryption keys. */
export interface StorageConfig {
  mode: Mode;
  databaseUrl: string;
  /** `ID:BASE64,...` (first is primary); undefined in local mode means "use or create the key file". */
  encryptionKeys: string | undefined;
  /** Local mode's generated key file. */
  keyFile: string;
}

export interface BehalfConfig extends StorageConfig {
  host: string;
  port: number;
  /** PEM certificate and key: behalf serves HTTPS itself when given. */
  tls: { cert: Buffer; key: Buffer } | undefined;
  /** A TLS-terminating proxy is in front: trust X-Forwarded-* for the client address and scheme. */
  trustProxy: boolean;
  google: {
    clientId: string;
    clientSecret: string;
    /** App client ids (iOS, Android, web) accepted as the ID token's `azp`. */
    appClientIds: string[];
    /** Redirect URIs a sign-in may name besides '' (mobile) and 'postmessage' (web popup). */
    redirectUris: string[];
    discoveryUrl: string;
    apiUrl: string;
    hostedDomain: string | undefined;
    requiredScopes: string[];
    /** How long one call to Google may take before it counts as unavailable. */
    timeoutMs: number;
  };
  /** Origins allowed to POST a code from a browser: BEHALF_ALLOWED_ORIGINS, else the client's JavaScript origins. */
  allowedOrigins: string[];
  /** Sign-in attempts allowed per client address per minute. */
  signInRateLimit: number;
  /** How long a refresh lease lasts: a crashed instance blocks a user's refresh at most this long. */
  refreshLeaseMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** When set, GET /metrics wants it as a Bearer token. */
  metricsToken: string | undefined;
  webhooks: WebhookConfig;
}

/** What managing and delivering webhooks needs besides the database and keys. */
export interface WebhookConfig {
  /** Webhook URLs may be http and on loopback or private networks (local development; local mode's default). */
  allowPrivate: boolean;
}

/** Raw settings: environment variables, with command-line flags (same names in camelCase) on top. */
export interface ConfigInput {
  mode: Mode;
  env: Record<string, string | undefined>;
  flags?: Partial<Record<FlagName, string | boolean | undefined>>;
  cwd?: string;
}

const SETTINGS = {
  port: 'BEHALF_PORT',
  host: 'BEHALF_HOST',
  databaseUrl: 'BEHALF_DATABASE_URL',
  clientSecretFile: 'BEHALF_CLIENT_SECRET_FILE',
  clientId: 'BEHALF_CLIENT_ID',
  clientSecret: 'BEHALF_CLIENT_SECRET',
  appClientIds: 'BEHALF_APP_CLIENT_IDS',
  redirectUris: 'BEHALF_REDIRECT_URIS',
  discoveryUrl: 'BEHALF_GOOGLE_DISCOVERY_URL',
  apiUrl: 'BEHALF_GOOGLE_API_URL',
  hostedDomain: 'BEHALF_HOSTED_DOMAIN',
  requiredScopes: 'BEHALF_REQUIRED_SCOPES',
  allowedOrigins: 'BEHALF_ALLOWED_ORIGINS',
  encryptionKeys: 'BEHALF_ENCRYPTION_KEYS',
  keyFile: 'BEHALF_KEY_FILE',
  tlsCert: 'BEHALF_TLS_CERT',
  tlsKey: 'BEHALF_TLS_KEY',
  trustProxy: 'BEHALF_TRUST_PROXY',
  logLevel: 'BEHALF_LOG_LEVEL',
  googleTimeoutMs: 'BEHALF_GOOGLE_TIMEOUT_MS',
  signInRateLimit: 'BEHALF_SIGNIN_RATE_LIMIT',
  refreshLeaseMs: 'BEHALF_REFRESH_LEASE_MS',
  metricsToken: 'BEHALF_METRICS_TOKEN',
  webhookAllowPrivate: 'BEHALF_WEBHOOK_ALLOW_PRIVATE',
} as const;

export type FlagName = keyof typeof SETTINGS;

export const DEFAULT_DATA_DIR = '.behalf';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Turn environment and flags into a validated config. Any problem stops start-up with one
 * BehalfError('CONFIG_INVALID') whose message names the setting and what is wrong; no message
 * ever contains a secret's value.
 */
export async function loadConfig(input: ConfigInput): Promise<BehalfConfig> {
  const cwd = input.cwd ?? process.cwd();
  const { get, fail } = reader(input);
  const storage = loadStorageConfig(input);

  const port = parsePort(get('port') ?? '8080') ?? fail('port', 'must be a whole number from 0 to 65535.');
  const host = get('host') ?? (input.mode === 'local' ? '127.0.0.1' : '0.0.0.0');

  const discoveryUrl = get('discoveryUrl') ?? GOOGLE_DISCOVERY_URL;
  if (!isAcceptableEndpoint(discoveryUrl)) fail('discoveryUrl', 'must be an https URL (http is allowed only on loopback, for the emulator).');
  const apiUrl = (get('apiUrl') ?? GOOGLE_API_URL).replace(/\/+$/, '');
  if (!isAcceptableEndpoint(apiUrl)) fail('apiUrl', 'must be an https URL (http is allowed only on loopback, for the emulator).');

  // The server's own OAuth client: Google's client secret file, or id + secret given directly.
  const secretFile = get('clientSecretFile');
  const directId = get('clientId');
  const directSecret = get('clientSecret');
  let client: { clientId: string; clientSecret: string; redirectUris: string[]; javascriptOrigins: string[] };
  if (secretFile !== undefined) {
    if (directId !== undefined || directSecret !== undefined) {
      fail('clientSecretFile', `give either the client secret file or ${SETTINGS.clientId} + ${SETTINGS.clientSecret}, not both.`);
    }
    client = await readClientSecretFile(resolve(cwd, secretFile));
  } else if (directId !== undefined && directSecret !== undefined) {
    client = { clientId: directId, clientSecret: directSecret, redirectUris: [], javascriptOrigins: [] };
  } else {
    return fail(
      'clientSecretFile',
      `is not set. Point it at the client_secret_*.json of your Google "Web application" OAuth client (or set ${SETTINGS.clientId} and ${SETTINGS.clientSecret}).`,
    );
  }
  if (!/^[\w.-]+\.apps\.googleusercontent\.com$/.test(client.clientId)) {
    fail(secretFile === undefined ? 'clientId' : 'clientSecretFile', 'the client id does not look like a Google OAuth client id (…apps.googleusercontent.com).');
  }

  const appClientIds = list(get('appClientIds'));
  for (const id of appClientIds) {
    if (!/^[\w.-]+\.apps\.googleusercontent\.com$/.test(id)) fail('appClientIds', `"${id}" is not a Google OAuth client id.`);
  }

  const redirectUris = [...new Set([...client.redirectUris, ...list(get('redirectUris'))])];
  for (const uri of redirectUris) {
    if (!isAbsoluteUrl(uri)) fail('redirectUris', `"${uri}" is not an absolute URL.`);
  }

  // BEHALF_ALLOWED_ORIGINS replaces the client's JavaScript origins rather than adding to them, so a
  // production server can leave out the localhost origins a client is often registered with.
  const configuredOrigins = get('allowedOrigins');
  const allowedOrigins = [...new Set((configuredOrigins === undefined ? client.javascriptOrigins : list(configuredOrigins)).map(normalizeOrigin))];
  for (const origin of allowedOrigins) {
    if (origin === null) fail('allowedOrigins', 'every entry must be an origin such as https://app.example.com.');
  }

  const hostedDomain = get('hostedDomain')?.toLowerCase();
  if (hostedDomain !== undefined && !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(hostedDomain)) {
    fail('hostedDomain', 'must be a domain name such as example.com.');
  }

  const tlsCertPath = get('tlsCert');
  const tlsKeyPath = get('tlsKey');
  if ((tlsCertPath === undefined) !== (tlsKeyPath === undefined)) {
    fail(tlsCertPath === undefined ? 'tlsCert' : 'tlsKey', `${SETTINGS.tlsCert} and ${SETTINGS.tlsKey} go together: give both or neither.`);
  }
  const tls =
    tlsCertPath !== undefined && tlsKeyPath !== undefined
      ? {
          cert: await readPem(resolve(cwd, tlsCertPath), 'CERTIFICATE', () => fail('tlsCert', `${tlsCertPath} is not a readable PEM certificate.`)),
          key: await readPem(resolve(cwd, tlsKeyPath), 'PRIVATE KEY', () => fail('tlsKey', `${tlsKeyPath} is not a readable PEM private key.`)),
        }
      : undefined;

  const trustProxy = parseBoolean(get('trustProxy') ?? 'false') ?? fail('trustProxy', 'must be true or false.');
  const timeoutMs = Number(get('googleTimeoutMs') ?? '10000');
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 120_000) {
    fail('googleTimeoutMs', 'must be a whole number of milliseconds from 100 to 120000.');
  }
  const signInRateLimit = Number(get('signInRateLimit') ?? '60');
  if (!Number.isInteger(signInRateLimit) || signInRateLimit < 1 || signInRateLimit > 1_000_000) {
    fail('signInRateLimit', 'must be a whole number of sign-ins per client address per minute (1 or more).');
  }
  const refreshLeaseMs = Number(get('refreshLeaseMs') ?? '15000');
  if (!Number.isInteger(refreshLeaseMs) || refreshLeaseMs < 3000 || refreshLeaseMs > 300_000) {
    fail('refreshLeaseMs', 'must be a whole number of milliseconds from 3000 to 300000.');
  }
  const logLevel = get('logLevel') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) fail('logLevel', `must be one of ${LOG_LEVELS.join(', ')}.`);
  const metricsToken = get('metricsToken');
  if (metricsToken !== undefined && !/^[\x21-\x7e]{16,512}$/.test(metricsToken)) {
    fail('metricsToken', 'must be 16 to 512 printable characters without spaces (e.g. `openssl rand -hex 32`).');
  }

  return {
    ...storage,
    host,
    port,
    tls,
    trustProxy,
    google: {
      clientId: client.clientId,
      clientSecret: client.clientSecret,
      appClientIds,
      redirectUris,
      discoveryUrl,
      apiUrl,
      hostedDomain,
      requiredScopes: normalizeScopes(get('requiredScopes') ?? ''),
      timeoutMs,
    },
    allowedOrigins: allowedOrigins.filter((o): o is string => o !== null),
    signInRateLimit,
    refreshLeaseMs,
    logLevel: logLevel as BehalfConfig['logLevel'],
    metricsToken,
    webhooks: loadWebhookConfig(input),
  };
}

/** The storage settings alone (what `behalf keys` and `behalf migrate` need). */
export function loadStorageConfig(input: ConfigInput): StorageConfig {
  const { get, fail } = reader(input);
  const encryptionKeys = get('encryptionKeys');
  if (encryptionKeys === undefined && input.mode === 'production') {
    fail(
      'encryptionKeys',
      'is required in production: comma-separated ID:BASE64 entries of 32-byte keys, the first one primary (`behalf keys generate` prints one).',
    );
  }
  return {
    mode: input.mode,
    databaseUrl: get('databaseUrl') ?? `sqlite:${DEFAULT_DATA_DIR}/behalf.db`,
    encryptionKeys,
    keyFile: resolve(input.cwd ?? process.cwd(), get('keyFile') ?? `${DEFAULT_DATA_DIR}/encryption-keys`),
  };
}

/** The webhook settings alone (what `behalf webhooks` needs besides storage). Local mode allows private networks. */
export function loadWebhookConfig(input: ConfigInput): WebhookConfig {
  const { get, fail } = reader(input);
  const allowPrivate = parseBoolean(get('webhookAllowPrivate') ?? (input.mode === 'local' ? 'true' : 'false'));
  return { allowPrivate: allowPrivate ?? fail('webhookAllowPrivate', 'must be true or false.') };
}

function reader(input: ConfigInput) {
  const get = (name: FlagName): string | undefined => {
    const flag = input.flags?.[name];
    if (typeof flag === 'boolean') return flag ? 'true' : 'false';
    const value = flag ?? input.env[SETTINGS[name]];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const fail = (name: FlagName, problem: string): never => {
    throw new BehalfError('CONFIG_INVALID', `${SETTINGS[name]}: ${problem}`);
  };
  return { get, fail };
}

function list(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

function parsePort(value: string): number | undefined {
  if (!/^\d{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port <= 65_535 ? port : undefined;
}

function parseBoolean(value: string): boolean | undefined {
  const v = value.toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  return undefined;
}

function isAbsoluteUrl(value: string): boolean {
  try {
    return new URL(value).protocol.length > 0;
  } catch {
    return false;
  }
}

/** `https://App.example.com/` → `https://app.example.com`; null when it is not an origin. */
function normalizeOrigin(value: string): string | null {
  try {
    const url = new URL(value);
    if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '') return null;
    return url.origin === 'null' ? null : url.origin;
  } catch {
    return null;
  }
}

async function readPem(path: string, label: string, onError: () => never): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch {
    return onError();
  }
  return data.toString('utf8').includes(`-----BEGIN `) && data.toString('utf8').includes(label) ? data : onError();
}
