import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { BehalfError } from '../errors.js';
import { SCOPES } from '../google/scopes.js';
import { LOCAL_API_KEY_FILE } from './local-mode.js';
import { runAction } from './run.js';

/**
 * Demo clients for local mode. `try-signin` plays the iOS app (Google Sign-In hands it a server
 * auth code, which it POSTs to its backend); `try-offline` plays the app's backend acting for the
 * user while they are away. Both talk only to loopback: the emulator and the local server.
 */
export function registerTryCommands(program: Command): void {
  program
    .command('try-signin')
    .description(
      'Play the iOS app: get a server auth code from the emulator for a test user and POST it to behalf',
    )
    .option('--email <email>', 'the test user', 'alice@example.com')
    .option('--platform <platform>', 'ios | android | web (which app client asks)', 'ios')
    .option('--consent', 'force the consent screen (a new refresh token)')
    .option('--server <url>', 'behalf server', 'http://127.0.0.1:8080')
    .option('--emulator <url>', 'Google emulator', 'http://127.0.0.1:8089')
    .action(
      (options: { email: string; platform: string; consent?: boolean; server: string; emulator: string }) =>
        runAction(async () => {
          const clients = (await call(options.emulator, 'GET', '/emulator/clients')) as {
            app_clients: Array<{ client_id: string; platform: string }>;
          };
          const app = clients.app_clients.find((c) => c.platform === options.platform);
          if (app === undefined)
            throw new BehalfError('INVALID_REQUEST', `--platform must be ios, android or web.`);
          await ensureUser(options.emulator, options.email);
          const { code } = (await call(options.emulator, 'POST', '/emulator/codes', {
            email: options.email,
            client_id: app.client_id,
            scope: ['openid', 'email', 'profile', SCOPES.driveAppdata].join(' '),
            redirect_uri: options.platform === 'web' ? 'postmessage' : '',
            ...(options.consent === true ? { prompt: 'consent' } : {}),
          })) as { code: string };
          // The app puts a photo in its appDataFolder, for the backend to work on later.
          await call(options.emulator, 'POST', '/emulator/drive/files', {
            email: options.email,
            name: `photo-${Date.now()}.jpg`,
            mime_type: 'image/jpeg',
            size: 2048,
          });
          process.stdout.write(
            `${options.platform} app: got a server auth code for ${options.email}; POSTing it to ${options.server}/v1/google/signin\n`,
          );
          const reply = await call(
            options.server,
            'POST',
            '/v1/google/signin',
            { code, ...(options.platform === 'web' ? { redirect_uri: 'postmessage' } : {}) },
            { 'x-requested-with': 'XMLHttpRequest' },
          );
          process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
        }),
    );

  program
    .command('try-offline')
    .description(
      "Play the app's backend while the user is offline: get their access token from behalf and list their Drive appDataFolder",
    )
    .option('--email <email>', 'the test user', 'alice@example.com')
    .option('--server <url>', 'behalf server', 'http://127.0.0.1:8080')
    .option('--emulator <url>', 'Google emulator (Drive API)', 'http://127.0.0.1:8089')
    .option('--api-key-file <file>', 'service API key file', LOCAL_API_KEY_FILE)
    .action((options: { email: string; server: string; emulator: string; apiKeyFile: string }) =>
      runAction(async () => {
        const apiKey = (
          await readFile(options.apiKeyFile, 'utf8').catch(() => {
            throw new BehalfError(
              'CONFIG_INVALID',
              `--api-key-file: cannot read ${options.apiKeyFile}; is \`npm start\` running here?`,
            );
          })
        ).trim();
        const users = (await call(options.emulator, 'GET', '/emulator/users')) as {
          users: Array<{ sub: string; email: string }>;
        };
        const user = users.users.find((u) => u.email === options.email);
        if (user === undefined)
          throw new BehalfError(
            'USER_NOT_FOUND',
            `${options.email} has not signed in; run try-signin first.`,
          );
        const auth = { authorization: `Bearer ${apiKey}` };
        const profile = await call(
          options.server,
          'GET',
          `/v1/users/${encodeURIComponent(user.sub)}`,
          undefined,
          auth,
        );
        process.stdout.write(
          `backend: ${options.email} is user ${user.sub}; stored grant: ${JSON.stringify((profile as { grant: unknown }).grant)}\n`,
        );
        const token = (await call(
          options.server,
          'POST',
          `/v1/users/${encodeURIComponent(user.sub)}/access-token`,
          undefined,
          auth,
        )) as {
          access_token: string;
          expires_at: string;
        };
        process.stdout.write(
          `backend: got a fresh access token from behalf (expires ${token.expires_at}); listing the appDataFolder\n`,
        );
        const files = await call(
          options.emulator,
          'GET',
          '/drive/v3/files?spaces=appDataFolder&fields=files(id,name,mimeType,size,modifiedTime)',
          undefined,
          { authorization: `Bearer ${token.access_token}` },
        );
        process.stdout.write(`${JSON.stringify(files, null, 2)}\n`);
      }),
    );
}

async function ensureUser(emulator: string, email: string): Promise<void> {
  const users = (await call(emulator, 'GET', '/emulator/users')) as { users: Array<{ email: string }> };
  if (!users.users.some((u) => u.email === email)) {
    const name = email.split('@')[0] ?? email;
    await call(emulator, 'POST', '/emulator/users', {
      email,
      name: name.charAt(0).toUpperCase() + name.slice(1),
    });
  }
}

async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${base}${path}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
  } catch {
    throw new BehalfError('GOOGLE_UNAVAILABLE', `${base} is not answering; start it with \`npm start\`.`);
  }
  const text = await response.text();
  const json = text === '' ? {} : (JSON.parse(text) as unknown);
  if (!response.ok) {
    process.stderr.write(
      `${method} ${base}${path.split('?')[0] ?? ''} → HTTP ${response.status}\n${JSON.stringify(json, null, 2)}\n`,
    );
    throw new BehalfError(
      'INVALID_REQUEST',
      `${method} ${path.split('?')[0] ?? ''} failed with HTTP ${response.status}.`,
    );
  }
  return json;
}
