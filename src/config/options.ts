/**
 * `createBehalf`'s settings: a typed API over the same checks as `behalf serve`'s environment
 * (loadConfig), so a setting means the same and is refused for the same reasons either way.
 */
import { BehalfError } from '../errors.js';
import { loadConfig, type BehalfConfig, type FlagName, type Mode } from './config.js';

/**
 * What behalf as a library is configured with. Each is the camelCase name of the `BEHALF_*`
 * variable `behalf serve` reads (`googleTimeoutMs` is BEHALF_GOOGLE_TIMEOUT_MS), typed: numbers are
 * numbers, durations are milliseconds and say so, lists are arrays. `undefined` means the default.
 * Environment variables are not read: pass what you need.
 */
export interface BehalfSettings {
  /** `production` (default) requires {@link encryptionKeys}; `local` may generate a key file ({@link keyFile}). */
  mode?: Mode | undefined;
  /**
   * Path of Google's `client_secret_*.json` for your **Web application** OAuth client, as downloaded
   * from the Cloud console. Or give {@link clientId} and {@link clientSecret} instead.
   */
  clientSecretFile?: string | undefined;
  /** The Web application client's id (`….apps.googleusercontent.com`), with {@link clientSecret}. */
  clientId?: string | undefined;
  /** The Web application client's secret, with {@link clientId}. */
  clientSecret?: string | undefined;
  /** iOS, Android and web client ids whose codes and ID tokens are accepted (the ID token's `azp`). */
  appClientIds?: readonly string[] | undefined;
  /**
   * Redirect URIs a web redirect-flow sign-in may name, besides `''` (iOS/Android) and `postmessage`
   * (web popup). Added to the client secret file's `redirect_uris`.
   */
  redirectUris?: readonly string[] | undefined;
  /**
   * Where Google's endpoints come from (default
   * `https://accounts.google.com/.well-known/openid-configuration`); the emulator's
   * `/.well-known/openid-configuration` to use it. https, or http on loopback only.
   */
  googleDiscoveryUrl?: string | undefined;
  /** Google APIs base URL (default `https://www.googleapis.com`); the emulator's base URL to use it. */
  googleApiUrl?: string | undefined;
  /** How long one call to Google may take, in milliseconds (default 10000; 100 to 120000). */
  googleTimeoutMs?: number | undefined;
  /** Accept only Google Workspace users of this domain (the ID token's `hd`); others get HD_NOT_ALLOWED. */
  hostedDomain?: string | undefined;
  /** Scopes your backend needs; sign-in reports the ones the user did not grant. */
  requiredScopes?: readonly string[] | undefined;
  /**
   * 32-byte keys as `ID:BASE64` entries, the first one encrypts, all decrypt (`behalf keys generate`
   * prints one). An array, or one string in BEHALF_ENCRYPTION_KEYS' comma-separated form. Required in production.
   */
  encryptionKeys?: string | readonly string[] | undefined;
  /** Local mode's generated key file (default `.behalf/encryption-keys`). */
  keyFile?: string | undefined;
  /** `sqlite:PATH` (default `sqlite:.behalf/behalf.db`) or `postgres://USER:PASSWORD@HOST:5432/DB`. */
  databaseUrl?: string | undefined;
  /**
   * How long a user's refresh lease lasts, in milliseconds (default 15000; 3000 to 300000): a
   * crashed instance blocks that user's refresh at most this long.
   */
  refreshLeaseMs?: number | undefined;
  /** The log level of behalf's own logger (default `info`); ignored when you pass a `logger`. */
  logLevel?: BehalfConfig['logLevel'] | undefined;
  /**
   * Webhook URLs may be http and on loopback or private networks (default false, true in local
   * mode). For local development only.
   */
  webhookAllowPrivate?: boolean | undefined;
}

/**
 * Names that are not library options, refused at compile time (`never`) and when the program runs,
 * each with what to do instead.
 */
export interface RefusedSettings {
  /** @deprecated Not an option: the discovery URL is {@link BehalfSettings.googleDiscoveryUrl}. */
  discoveryUrl?: never;
  /** @deprecated Not an option: the Google APIs base URL is {@link BehalfSettings.googleApiUrl}. */
  apiUrl?: never;
  /** @deprecated A server setting (`behalf serve`): a library does not listen. */
  port?: never;
  /** @deprecated A server setting (`behalf serve`): a library does not listen. */
  host?: never;
  /** @deprecated A server setting (`behalf serve`): your own server terminates TLS. */
  tlsCert?: never;
  /** @deprecated A server setting (`behalf serve`): your own server terminates TLS. */
  tlsKey?: never;
  /** @deprecated A server setting (`behalf serve`): your own server decides whom to trust. */
  trustProxy?: never;
  /** @deprecated A server setting (`behalf serve`'s GET /metrics). */
  metricsToken?: never;
  /** @deprecated A server setting (`behalf serve` registers its RISC receiver at start-up). */
  riscReceiverUrl?: never;
  /** @deprecated A server setting (`behalf serve`'s CORS for POST /v1/google/signin). */
  allowedOrigins?: never;
  /** @deprecated A server setting (`behalf serve`'s rate limit on its sign-in route). */
  signInRateLimit?: never;
}

type SettingName = Exclude<keyof BehalfSettings, 'mode'>;

// Every library setting, once (the type says when one is missing or extra).
const SETTINGS: Record<SettingName, true> = {
  clientSecretFile: true,
  clientId: true,
  clientSecret: true,
  appClientIds: true,
  redirectUris: true,
  googleDiscoveryUrl: true,
  googleApiUrl: true,
  googleTimeoutMs: true,
  hostedDomain: true,
  requiredScopes: true,
  encryptionKeys: true,
  keyFile: true,
  databaseUrl: true,
  refreshLeaseMs: true,
  logLevel: true,
  webhookAllowPrivate: true,
};

const REFUSED: Record<keyof RefusedSettings, string> = {
  discoveryUrl: 'is not an option: the discovery URL is googleDiscoveryUrl.',
  apiUrl: 'is not an option: the Google APIs base URL is googleApiUrl.',
  port: 'is a server setting (behalf serve), not a library option.',
  host: 'is a server setting (behalf serve), not a library option.',
  tlsCert: 'is a server setting (behalf serve), not a library option.',
  tlsKey: 'is a server setting (behalf serve), not a library option.',
  trustProxy: 'is a server setting (behalf serve), not a library option.',
  metricsToken: 'is a server setting (behalf serve), not a library option.',
  riscReceiverUrl: 'is a server setting (behalf serve), not a library option.',
  allowedOrigins: 'is a server setting (behalf serve), not a library option.',
  signInRateLimit: 'is a server setting (behalf serve), not a library option.',
};

/** A library setting is a config flag of the same name (this compiles only while that holds). */
function flagName(name: SettingName): FlagName {
  return name;
}

/**
 * The validated config for `createBehalf`'s settings. Every problem (an unknown or refused name, a
 * value of the wrong type, anything loadConfig refuses) is reported at once in one
 * BehalfError('CONFIG_INVALID'), one line each, naming the option as the caller wrote it.
 */
export async function loadLibraryConfig(
  settings: BehalfSettings & RefusedSettings,
  extraNames: readonly string[] = [],
): Promise<BehalfConfig> {
  const { mode = 'production', ...rest } = settings;
  const problems: string[] = [];
  if (mode !== 'production' && mode !== 'local') problems.push('mode: must be "production" or "local".');
  const flags: Partial<Record<FlagName, unknown>> = {};
  for (const [name, value] of Object.entries(rest) as Array<[string, unknown]>) {
    if (value === undefined || extraNames.includes(name)) continue;
    if (Object.hasOwn(SETTINGS, name)) flags[flagName(name as SettingName)] = value;
    else if (Object.hasOwn(REFUSED, name))
      problems.push(`${name}: ${REFUSED[name as keyof RefusedSettings]}`);
    else problems.push(`${name}: is not an option of createBehalf.`);
  }
  return loadConfig({
    mode: mode === 'local' ? 'local' : 'production',
    env: {},
    // Values of the wrong type are refused by loadConfig's reader, with the rest.
    flags: flags as Partial<Record<FlagName, string>>,
    names: 'options',
    problems,
  });
}

/** Throw when `value` is not a plain object of options (a JavaScript caller's mistake). */
export function checkOptionsObject(value: unknown): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new BehalfError('CONFIG_INVALID', 'createBehalf takes an object of options.');
}
