import type { Command } from 'commander';
import type { FlagName } from '../config/config.js';

/** The settings every command that opens the database or talks to Google accepts as flags. */
const FLAGS: Array<[string, FlagName, string]> = [
  ['--port <port>', 'port', 'listen port (BEHALF_PORT, default 8080)'],
  ['--host <host>', 'host', 'listen address (BEHALF_HOST)'],
  ['--database-url <url>', 'databaseUrl', 'sqlite:PATH or postgres://… (BEHALF_DATABASE_URL)'],
  [
    '--client-secret-file <file>',
    'clientSecretFile',
    "Google's client_secret_*.json (BEHALF_CLIENT_SECRET_FILE)",
  ],
  [
    '--app-client-ids <ids>',
    'appClientIds',
    'comma-separated iOS/Android/web client ids (BEHALF_APP_CLIENT_IDS)',
  ],
  [
    '--google-discovery-url <url>',
    'googleDiscoveryUrl',
    'OpenID discovery URL (BEHALF_GOOGLE_DISCOVERY_URL)',
  ],
  ['--google-api-url <url>', 'googleApiUrl', 'Google APIs base URL (BEHALF_GOOGLE_API_URL)'],
  ['--hosted-domain <domain>', 'hostedDomain', 'accept only this Workspace domain (BEHALF_HOSTED_DOMAIN)'],
  ['--required-scopes <scopes>', 'requiredScopes', 'scopes the app needs (BEHALF_REQUIRED_SCOPES)'],
  ['--allowed-origins <origins>', 'allowedOrigins', 'origins allowed to post codes (BEHALF_ALLOWED_ORIGINS)'],
  ['--tls-cert <file>', 'tlsCert', 'PEM certificate (BEHALF_TLS_CERT)'],
  ['--tls-key <file>', 'tlsKey', 'PEM private key (BEHALF_TLS_KEY)'],
  ['--trust-proxy', 'trustProxy', 'a TLS-terminating proxy is in front (BEHALF_TRUST_PROXY)'],
  ['--log-level <level>', 'logLevel', 'fatal|error|warn|info|debug|trace|silent (BEHALF_LOG_LEVEL)'],
];

export function addSettingsFlags(command: Command): Command {
  for (const [flag, , description] of FLAGS) command.option(flag, description);
  return command;
}

/** Commander's parsed options → config flags (only the ones given). */
export function settingsFromOptions(
  options: Record<string, unknown>,
): Partial<Record<FlagName, string | boolean>> {
  const flags: Partial<Record<FlagName, string | boolean>> = {};
  for (const [flag, name] of FLAGS) {
    const key = flag
      .replace(/^--/, '')
      .split(' ')[0]!
      .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const value = options[key];
    if (typeof value === 'string' || typeof value === 'boolean') flags[name] = value;
  }
  return flags;
}
