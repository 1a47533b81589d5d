import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BehalfError, isBehalfError } from '../errors.js';
import {
  GOOGLE_API_URL,
  GOOGLE_DISCOVERY_URL,
  isAcceptableEndpoint,
  isLoopbackHost,
} from '../google/discovery.js';
import { normalizeScopes } from '../google/scopes.js';
import { parseDatabaseUrl } from '../vault/database-url.js';
import { parseKeyring } from '../vault/keyring.js';
import { readClientSecretFile, type ClientSecret } from './client-secret.js';

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
  /**
   * behalf's receiver URL as Google reaches it: when set, `behalf serve` registers it with Google's
   * RISC API at start-up (stream:update), with the service account key GOOGLE_APPLICATION_CREDENTIALS names.
   */
  riscReceiverUrl: string | undefined;
  webhooks: WebhookConfig;
}

/** What managing and delivering webhooks needs besides the database and keys. */
export interface WebhookConfig {
  /** Webhook URLs may be http and on loopback or private networks (local development; local mode's default). */
  allowPrivate: boolean;
}

/**
 * A setting's value as given: a string as the environment and the command line give it, or typed
 * (a number, a boolean, a list) as `createBehalf`'s options give it. Both go through the same checks.
 */
export type FlagValue = string | number | boolean | readonly string[];

/**
 * Raw settings: environment variables, with flags (the variables' names in camelCase, e.g.
 * `googleTimeoutMs` for BEHALF_GOOGLE_TIMEOUT_MS) on top: the command line's, or the library's options.
 */
export interface ConfigInput {
  mode: Mode;
  env: Record<string, string | undefined>;
  flags?: Partial<Record<FlagName, FlagValue | undefined>>;
  cwd?: string;
  /**
   * How problems name a setting: `env` (default) by its variable, `BEHALF_GOOGLE_TIMEOUT_MS`;
   * `options` by its camelCase name, `googleTimeoutMs`, as `createBehalf`'s caller wrote it.
   */
  names?: 'env' | 'options';
  /** Problems found before these checks (e.g. an unknown library option), reported with the rest. */
  problems?: readonly string[];
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
  googleDiscoveryUrl: 'BEHALF_GOOGLE_DISCOVERY_URL',
  googleApiUrl: 'BEHALF_GOOGLE_API_URL',
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
  riscReceiverUrl: 'BEHALF_RISC_RECEIVER_URL',
  webhookAllowPrivate: 'BEHALF_WEBHOOK_ALLOW_PRIVATE',
} as const;

export type FlagName = keyof typeof SETTINGS;

/** What a setting holds, for values given typed (a string is always accepted, as env and CLI give). */
const KINDS: Record<FlagName, 'string' | 'number' | 'boolean' | 'list'> = {
  port: 'number',
  host: 'string',
  databaseUrl: 'string',
  clientSecretFile: 'string',
  clientId: 'string',
  clientSecret: 'string',
  appClientIds: 'list',
  redirectUris: 'list',
  googleDiscoveryUrl: 'string',
  googleApiUrl: 'string',
  hostedDomain: 'string',
  requiredScopes: 'list',
  allowedOrigins: 'list',
  encryptionKeys: 'list',
  keyFile: 'string',
  tlsCert: 'string',
  tlsKey: 'string',
  trustProxy: 'boolean',
  logLevel: 'string',
  googleTimeoutMs: 'number',
  signInRateLimit: 'number',
  refreshLeaseMs: 'number',
  metricsToken: 'string',
  riscReceiverUrl: 'string',
  webhookAllowPrivate: 'boolean',
};

export const DEFAULT_DATA_DIR = '.behalf';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Turn environment and flags into a validated config. Every problem found stops start-up with one
 * BehalfError('CONFIG_INVALID') whose message has one line per problem, each naming the setting
 * and what is wrong, so a bad deployment is fixed in one round; no message ever contains a
 * secret's value.
 */
export async function loadConfig(input: ConfigInput): Promise<BehalfConfig> {
  const cwd = input.cwd ?? process.cwd();
  const problems = new Problems(input);
  for (const line of input.problems ?? []) problems.add(line);
  const { get, getList, problem } = reader(input, problems);
  const storage = storageSettings(input, problems);

  const port = parsePort(get('port') ?? '8080');
  if (port === undefined) problem('port', 'must be a whole number from 0 to 65535.');
  const host = get('host') ?? (input.mode === 'local' ? '127.0.0.1' : '0.0.0.0');

  const discoveryUrl = get('googleDiscoveryUrl');
  if (discoveryUrl !== undefined && !isAcceptableEndpoint(discoveryUrl)) {
    problem(
      'googleDiscoveryUrl',
      'must be an https URL (http is allowed only on loopback, for the emulator).',
    );
  }
  const apiUrl = (get('googleApiUrl') ?? GOOGLE_API_URL).replace(/\/+$/, '');
  if (!isAcceptableEndpoint(apiUrl))
    problem('googleApiUrl', 'must be an https URL (http is allowed only on loopback, for the emulator).');

  const client = await oauthClient(get, problem, cwd, problems);
  // A client secret file the emulator wrote, with Google's endpoints left at their default, would
  // send the emulator's refresh tokens and client secret to real Google (`behalf sweep --force`
  // would try every grant there): say which discovery URL belongs with it instead.
  if (client.tokenUri !== undefined && discoveryUrl === undefined && isLoopbackUrl(client.tokenUri)) {
    problem(
      'googleDiscoveryUrl',
      `is not set, but the client secret file is a local Google emulator's (its token_uri is ${client.tokenUri}): set it to ${new URL(client.tokenUri).origin}/.well-known/openid-configuration, or use --local.`,
    );
  }

  const appClientIds = getList('appClientIds');
  for (const id of appClientIds) {
    if (!CLIENT_ID.test(id)) problem('appClientIds', `"${id}" is not a Google OAuth client id.`);
  }

  const redirectUris = [...new Set([...client.redirectUris, ...getList('redirectUris')])];
  for (const uri of redirectUris) {
    if (!isAbsoluteUrl(uri)) problem('redirectUris', `"${uri}" is not an absolute URL.`);
  }

  // BEHALF_ALLOWED_ORIGINS replaces the client's JavaScript origins rather than adding to them, so a
  // production server can leave out the localhost origins a client is often registered with.
  const configuredOrigins = get('allowedOrigins') === undefined ? undefined : getList('allowedOrigins');
  const allowedOrigins = [...new Set((configuredOrigins ?? client.javascriptOrigins).map(normalizeOrigin))];
  if (allowedOrigins.includes(null))
    problem('allowedOrigins', 'every entry must be an origin such as https://app.example.com.');

  const hostedDomain = get('hostedDomain')?.toLowerCase();
  if (hostedDomain !== undefined && !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(hostedDomain)) {
    problem('hostedDomain', 'must be a domain name such as example.com.');
  }

  const tlsCertPath = get('tlsCert');
  const tlsKeyPath = get('tlsKey');
  if ((tlsCertPath === undefined) !== (tlsKeyPath === undefined)) {
    problem(
      tlsCertPath === undefined ? 'tlsCert' : 'tlsKey',
      `${SETTINGS.tlsCert} and ${SETTINGS.tlsKey} go together: give both or neither.`,
    );
  }
  let tls: BehalfConfig['tls'];
  if (tlsCertPath !== undefined && tlsKeyPath !== undefined) {
    const [cert, key] = await Promise.all([
      readPem(resolve(cwd, tlsCertPath), 'CERTIFICATE'),
      readPem(resolve(cwd, tlsKeyPath), 'PRIVATE KEY'),
    ]);
    if (cert === undefined) problem('tlsCert', `${tlsCertPath} is not a readable PEM certificate.`);
    if (key === undefined) problem('tlsKey', `${tlsKeyPath} is not a readable PEM private key.`);
    if (cert !== undefined && key !== undefined) tls = { cert, key };
  }

  const trustProxy = parseBoolean(get('trustProxy') ?? 'false');
  if (trustProxy === undefined) problem('trustProxy', 'must be true or false.');
  const timeoutMs = Number(get('googleTimeoutMs') ?? '10000');
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 120_000) {
    problem('googleTimeoutMs', 'must be a whole number of milliseconds from 100 to 120000.');
  }
  const signInRateLimit = Number(get('signInRateLimit') ?? '60');
  if (!Number.isInteger(signInRateLimit) || signInRateLimit < 1 || signInRateLimit > 1_000_000) {
    problem(
      'signInRateLimit',
      'must be a whole number of sign-ins per client address per minute (1 or more).',
    );
  }
  const refreshLeaseMs = Number(get('refreshLeaseMs') ?? '15000');
  if (!Number.isInteger(refreshLeaseMs) || refreshLeaseMs < 3000 || refreshLeaseMs > 300_000) {
    problem('refreshLeaseMs', 'must be a whole number of milliseconds from 3000 to 300000.');
  }
  const logLevel = get('logLevel') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    problem('logLevel', `must be one of ${LOG_LEVELS.join(', ')}.`);
  const metricsToken = get('metricsToken');
  if (metricsToken !== undefined && !/^[\x21-\x7e]{16,512}$/.test(metricsToken)) {
    problem(
      'metricsToken',
      'must be 16 to 512 printable characters without spaces (e.g. `openssl rand -hex 32`).',
    );
  }
  const riscReceiverUrl = get('riscReceiverUrl');
  if (riscReceiverUrl !== undefined && !isAcceptableEndpoint(riscReceiverUrl)) {
    problem('riscReceiverUrl', 'must be an https URL (http is allowed only on loopback, for the emulator).');
  }
  const requiredScopes = normalizeScopes(getList('requiredScopes', /[\s,]+/));
  const webhooks = webhookSettings(input, problems);

  problems.throwIfAny();
  return {
    ...storage,
    host,
    port: port ?? 0,
    tls,
    trustProxy: trustProxy ?? false,
    google: {
      clientId: client.clientId,
      clientSecret: client.clientSecret,
      appClientIds,
      redirectUris,
      discoveryUrl: discoveryUrl ?? GOOGLE_DISCOVERY_URL,
      apiUrl,
      hostedDomain,
      requiredScopes,
      timeoutMs,
    },
    allowedOrigins: allowedOrigins.filter((o): o is string => o !== null),
    signInRateLimit,
    refreshLeaseMs,
    logLevel: logLevel as BehalfConfig['logLevel'],
    metricsToken,
    riscReceiverUrl,
    webhooks,
  };
}

/** The storage settings alone (what `behalf keys rotate` and `behalf webhooks` need). */
export function loadStorageConfig(input: ConfigInput): StorageConfig {
  const problems = new Problems(input);
  const storage = storageSettings(input, problems);
  problems.throwIfAny();
  return storage;
}

/** The database URL alone (what `behalf migrate` and the API key commands need): no encryption keys. */
export function loadDatabaseUrl(input: ConfigInput): string {
  const problems = new Problems(input);
  const url = databaseUrlSetting(input, problems);
  problems.throwIfAny();
  return url;
}

/** The webhook settings alone (what `behalf webhooks` needs besides storage). Local mode allows private networks. */
export function loadWebhookConfig(input: ConfigInput): WebhookConfig {
  const problems = new Problems(input);
  const webhooks = webhookSettings(input, problems);
  problems.throwIfAny();
  return webhooks;
}

function storageSettings(input: ConfigInput, problems: Problems): StorageConfig {
  const { get, problem } = reader(input, problems);
  const encryptionKeys = get('encryptionKeys');
  if (encryptionKeys === undefined && input.mode === 'production') {
    problem(
      'encryptionKeys',
      'is required in production: comma-separated ID:BASE64 entries of 32-byte keys, the first one primary (`behalf keys generate` prints one).',
    );
  } else if (encryptionKeys !== undefined) {
    problems.collect(() => parseKeyring(encryptionKeys));
  }
  return {
    mode: input.mode,
    databaseUrl: databaseUrlSetting(input, problems),
    encryptionKeys,
    keyFile: resolve(input.cwd ?? process.cwd(), get('keyFile') ?? `${DEFAULT_DATA_DIR}/encryption-keys`),
  };
}

function databaseUrlSetting(input: ConfigInput, problems: Problems): string {
  const url = reader(input, problems).get('databaseUrl') ?? `sqlite:${DEFAULT_DATA_DIR}/behalf.db`;
  problems.collect(() => parseDatabaseUrl(url, input.cwd));
  return url;
}

function webhookSettings(input: ConfigInput, problems: Problems): WebhookConfig {
  const { get, problem } = reader(input, problems);
  const allowPrivate = parseBoolean(
    get('webhookAllowPrivate') ?? (input.mode === 'local' ? 'true' : 'false'),
  );
  if (allowPrivate === undefined) problem('webhookAllowPrivate', 'must be true or false.');
  return { allowPrivate: allowPrivate ?? false };
}

const CLIENT_ID = /^[\w.-]+\.apps\.googleusercontent\.com$/;

/**
 * The server's own OAuth client: Google's client secret file, or id + secret given directly. When
 * it cannot be read, a problem is recorded and an empty client stands in, so that the other
 * settings are still checked (it is never returned from loadConfig).
 */
async function oauthClient(
  get: (name: FlagName) => string | undefined,
  problem: (name: FlagName, text: string) => void,
  cwd: string,
  problems: Problems,
): Promise<ClientSecret> {
  const none: ClientSecret = {
    clientId: '',
    clientSecret: '',
    redirectUris: [],
    javascriptOrigins: [],
    tokenUri: undefined,
  };
  const secretFile = get('clientSecretFile');
  const directId = get('clientId');
  const directSecret = get('clientSecret');
  if (secretFile !== undefined) {
    if (directId !== undefined || directSecret !== undefined) {
      problem(
        'clientSecretFile',
        `give either the client secret file or ${SETTINGS.clientId} + ${SETTINGS.clientSecret}, not both.`,
      );
    }
    const client = await problems.collectAsync(() => readClientSecretFile(resolve(cwd, secretFile)));
    if (client === undefined) return none;
    if (!CLIENT_ID.test(client.clientId))
      problem(
        'clientSecretFile',
        'the client id does not look like a Google OAuth client id (…apps.googleusercontent.com).',
      );
    return client;
  }
  if (directId !== undefined && directSecret !== undefined) {
    if (!CLIENT_ID.test(directId))
      problem(
        'clientId',
        'the client id does not look like a Google OAuth client id (…apps.googleusercontent.com).',
      );
    return { ...none, clientId: directId, clientSecret: directSecret };
  }
  problem(
    'clientSecretFile',
    `is not set. Point it at the client_secret_*.json of your Google "Web application" OAuth client (or set ${SETTINGS.clientId} and ${SETTINGS.clientSecret}).`,
  );
  return none;
}

/** Configuration problems, collected so that all of them are reported at once, one line each. */
class Problems {
  readonly #lines: string[] = [];

  constructor(private readonly input: Pick<ConfigInput, 'names'>) {}

  add(line: string): void {
    if (!this.#lines.includes(line)) this.#lines.push(line);
  }

  /** Run a check that throws CONFIG_INVALID; its message becomes a problem. Anything else is thrown. */
  collect<T>(check: () => T): T | undefined {
    try {
      return check();
    } catch (error) {
      this.#record(error);
      return undefined;
    }
  }

  async collectAsync<T>(check: () => Promise<T>): Promise<T | undefined> {
    try {
      return await check();
    } catch (error) {
      this.#record(error);
      return undefined;
    }
  }

  throwIfAny(): void {
    if (this.#lines.length === 0) return;
    const lines = this.input.names === 'options' ? this.#lines.map(optionNames) : this.#lines;
    throw new BehalfError('CONFIG_INVALID', lines.join('\n'));
  }

  #record(error: unknown): void {
    if (!isBehalfError(error) || error.code !== 'CONFIG_INVALID') throw error;
    for (const line of error.message.split('\n')) this.add(line);
  }
}

const OPTION_NAMES = new Map<string, string>(Object.entries(SETTINGS).map(([name, env]) => [env, name]));

/** `BEHALF_GOOGLE_TIMEOUT_MS: …` → `googleTimeoutMs: …`: a problem named as the library's caller wrote it. */
function optionNames(line: string): string {
  return line.replace(/\bBEHALF_[A-Z_]+\b/g, (env) => OPTION_NAMES.get(env) ?? env);
}

function reader(input: ConfigInput, problems: Problems) {
  const problem = (name: FlagName, text: string): void => problems.add(`${SETTINGS[name]}: ${text}`);
  /** The flag, else the variable; a typed flag of the wrong kind is a problem (and counts as not given). */
  const given = (name: FlagName): string | readonly string[] | undefined => {
    const flag = input.flags?.[name];
    if (flag === undefined) return input.env[SETTINGS[name]];
    if (typeof flag === 'string') return flag;
    const kind = KINDS[name];
    if (kind === 'number' && typeof flag === 'number') return String(flag);
    if (kind === 'boolean' && typeof flag === 'boolean') return flag ? 'true' : 'false';
    if (kind === 'list' && Array.isArray(flag) && flag.every((entry) => typeof entry === 'string'))
      return flag as readonly string[];
    problem(name, KIND_PROBLEMS[kind]);
    return undefined;
  };
  const get = (name: FlagName): string | undefined => {
    const value = given(name);
    const text = typeof value === 'string' ? value : value?.join(',');
    return text === undefined || text.trim() === '' ? undefined : text.trim();
  };
  /** A list setting: given as a list, or as one string split at `separator` (commas). */
  const getList = (name: FlagName, separator: RegExp = /,/): string[] => {
    const value = given(name);
    const entries = typeof value === 'string' ? value.split(separator) : (value ?? []);
    return entries.map((s) => s.trim()).filter((s) => s.length > 0);
  };
  return { get, getList, problem };
}

const KIND_PROBLEMS = {
  string: 'must be a string.',
  number: 'must be a number.',
  boolean: 'must be true or false.',
  list: 'must be a list of strings.',
} as const;

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

function isLoopbackUrl(value: string): boolean {
  try {
    return isLoopbackHost(new URL(value).hostname);
  } catch {
    return false;
  }
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

async function readPem(path: string, label: string): Promise<Buffer | undefined> {
  const data = await readFile(path).catch(() => undefined);
  const text = data?.toString('utf8');
  return text !== undefined && text.includes('-----BEGIN ') && text.includes(label) ? data : undefined;
}
