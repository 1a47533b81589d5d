import type { Server } from 'node:net';
import type { Command } from 'commander';
import { createRuntime, createServer } from '../app.js';
import { loadConfig, type BehalfConfig } from '../config/index.js';
import { BehalfError } from '../errors.js';
import { registerReceiverAtStartup } from '../risc/index.js';
import { redactDatabaseUrl } from '../vault/index.js';
import type { Demo } from '../demo/index.js';
import {
  startLocalDemo,
  startLocalGoogle,
  ensureLocalApiKey,
  LOCAL_SCOPES,
  type LocalGoogle,
} from './local-mode.js';
import { warnAboutExpiringGrants } from '../tokens/index.js';
import { runAction } from './run.js';
import { addSettingsFlags, settingsFromOptions } from './settings-flags.js';

export function registerServeCommand(program: Command): void {
  addSettingsFlags(
    program
      .command('serve')
      .description(
        'Run the behalf server (production: real Google; --local: with the emulator, nothing to configure)',
      )
      .option(
        '--local',
        'local mode: SQLite, a generated key file and the Google emulator in the same process',
      )
      .option('--emulator-port <port>', 'local mode: the emulator port (BEHALF_EMULATOR_PORT, default 8089)')
      .option(
        '--demo-port <port>',
        'local mode: the demo web page port (BEHALF_DEMO_PORT, default 8090 or any free port)',
      ),
  ).action((options: Record<string, unknown>) =>
    runAction(async () => {
      const local = options.local === true;
      let emulator: LocalGoogle | undefined;
      let demo: Demo | undefined;
      const env = { ...process.env };
      if (local) {
        // The demo page listens first: its origin becomes one of the emulator's JavaScript origins.
        demo = await startLocalDemo((options.demoPort as string | undefined) ?? env.BEHALF_DEMO_PORT);
        emulator = await startLocalGoogle(
          env,
          String(options.emulatorPort ?? env.BEHALF_EMULATOR_PORT ?? '8089'),
          demo.origins,
        ).catch(async (error: unknown) => {
          await demo?.close();
          throw error;
        });
      }
      let config: BehalfConfig;
      let runtime: Awaited<ReturnType<typeof createRuntime>>;
      try {
        config = await loadConfig({
          mode: local ? 'local' : 'production',
          env,
          flags: settingsFromOptions(options),
        });
        runtime = await createRuntime(config);
      } catch (error) {
        // Nothing may keep the process alive after a failed start: stop the local emulator and demo too.
        await demo?.close();
        await emulator?.close();
        throw error;
      }
      const app = createServer(config, runtime);
      const close = async () => {
        await app.close();
        await demo?.close();
        await runtime.behalf.close();
        await emulator?.close();
      };
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        process.once(signal, () => void close().finally(() => process.exit(0)));
      }
      try {
        await app.listen({ port: config.port, host: config.host });
      } catch (error) {
        await close();
        throw listenError(error, config);
      }
      runtime.behalf.webhooks.start();
      const url = serverUrl(config, app.server.address());
      // BEHALF_RISC_RECEIVER_URL: register the receiver with Google's RISC API now it is listening.
      await registerReceiverAtStartup({
        receiverUrl: config.riscReceiverUrl,
        discoveryUrl: config.google.discoveryUrl,
        credentialsFile: env.GOOGLE_APPLICATION_CREDENTIALS,
        fetch: globalThis.fetch,
        logger: runtime.logger,
      });
      if (local && emulator !== undefined && demo !== undefined) {
        const apiKeyFile = await ensureLocalApiKey(runtime.store);
        demo.attach({
          behalfUrl: url,
          emulatorUrl: emulator.url,
          clientId: config.google.clientId,
          scopes: LOCAL_SCOPES,
          behalf: runtime.behalf,
        });
        printLocalBanner({ url, config, emulator, demo, apiKeyFile, createdKeyFile: runtime.createdKeyFile });
      } else {
        runtime.logger.info({ url, database: redactDatabaseUrl(config.databaseUrl) }, 'behalf is listening');
        await warnAboutExpiringGrants({ ...runtime, clientId: config.google.clientId }).catch(() => 0);
      }
    }),
  );
}

/** Why the server could not listen, naming the setting to change (not "unexpected Error: listen EADDRINUSE"). */
function listenError(error: unknown, config: BehalfConfig): unknown {
  const where = `${config.host}:${config.port}`;
  switch ((error as NodeJS.ErrnoException | undefined)?.code) {
    case 'EADDRINUSE':
      return new BehalfError(
        'CONFIG_INVALID',
        `BEHALF_PORT: port ${config.port} is in use on ${config.host} (another behalf, or another program): stop it, or set BEHALF_PORT (--port) to a free port.`,
      );
    case 'EACCES':
      return new BehalfError(
        'CONFIG_INVALID',
        `BEHALF_PORT: listening on ${where} is not permitted (ports below 1024 need privileges): set BEHALF_PORT (--port) to 1024 or above.`,
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return new BehalfError(
        'CONFIG_INVALID',
        `BEHALF_HOST: ${config.host} is not an address of this machine: set BEHALF_HOST (--host), e.g. 0.0.0.0 or 127.0.0.1.`,
      );
    default:
      return error;
  }
}

function serverUrl(config: BehalfConfig, address: ReturnType<Server['address']>): string {
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  return `${config.tls === undefined ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function printLocalBanner(input: {
  url: string;
  config: BehalfConfig;
  emulator: LocalGoogle;
  demo: Demo;
  apiKeyFile: string;
  createdKeyFile: boolean;
}): void {
  const { url, config, emulator, demo, apiKeyFile, createdKeyFile } = input;
  const lines = [
    '',
    'behalf is running in local mode',
    '',
    `  Open ${demo.url} in a browser: a web app signs you in with Google (emulated) and hands`,
    '  the code to behalf; then its backend enhances a photo for you while you are away.',
    '',
    `  server     ${url}`,
    `  emulator   ${emulator.url}   (Google, emulated: no network, no Cloud project; state in memory)`,
    `  database   ${redactDatabaseUrl(config.databaseUrl)}`,
    `  key file   ${config.keyFile}${createdKeyFile ? '   (generated now: local mode only; production needs BEHALF_ENCRYPTION_KEYS)' : ''}`,
    `  API key    in ${apiKeyFile}`,
    `  console    ${url}/admin   (sign in with that API key)`,
    '',
    'Or from another terminal:',
    '  1. Be the iOS app: sign in as a test user and send the server auth code to behalf',
    `       npx behalf try-signin --email alice@example.com`,
    '  2. Be the backend while alice is offline: get her access token and read her Drive appDataFolder',
    `       npx behalf try-offline --email alice@example.com`,
    '',
    'Press Ctrl+C to stop.',
    '',
  ];
  process.stdout.write(lines.join('\n'));
}
