import type { Command } from 'commander';
import { BehalfError } from '../errors.js';
import { runAction } from './run.js';

export function registerEmulatorCommand(program: Command): void {
  program
    .command('emulator')
    .description("Run the local emulator of Google's OAuth/OIDC endpoints and Drive appDataFolder")
    .option('--port <port>', 'port', '8089')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option(
      '--write-client-secret <file>',
      "write the server client's client_secret JSON (Google's download format) to this file",
    )
    .option(
      '--javascript-origins <origins>',
      "comma-separated origins of web apps that load /gsi/client (the server client's Authorized JavaScript origins)",
    )
    .action(
      (options: { port: string; host: string; writeClientSecret?: string; javascriptOrigins?: string }) =>
        runAction(async () => {
          if (!/^\d{1,5}$/.test(options.port) || Number(options.port) > 65_535) {
            throw new BehalfError('CONFIG_INVALID', '--port must be a whole number from 0 to 65535.');
          }
          const javascriptOrigins = (options.javascriptOrigins ?? '')
            .split(',')
            .map((o) => o.trim())
            .filter((o) => o !== '');
          // Loaded only for this command, not with the CLI.
          const { startEmulator } = await import('../emulator/index.js');
          let emulator;
          try {
            emulator = await startEmulator({
              port: Number(options.port),
              host: options.host,
              javascriptOrigins,
            });
          } catch (error) {
            if (error instanceof TypeError)
              throw new BehalfError('CONFIG_INVALID', `--javascript-origins: ${error.message}`);
            throw error;
          }
          if (options.writeClientSecret !== undefined)
            await emulator.writeClientSecret(options.writeClientSecret);
          const { server, apps } = emulator.clients;
          process.stdout.write(
            [
              `Google emulator listening on ${emulator.url}`,
              `  discovery        ${emulator.url}/.well-known/openid-configuration`,
              `  server client    ${server.clientId}`,
              `  app clients      ios ${apps.ios}`,
              `                   android ${apps.android}`,
              `                   web ${apps.web}`,
              `  web sign-in      ${emulator.url}/gsi/client for pages on ${server.javascriptOrigins.join(', ')}`,
              options.writeClientSecret === undefined
                ? '  client secret    GET /emulator/clients (or --write-client-secret FILE)'
                : `  client secret    written to ${options.writeClientSecret}`,
              '',
            ].join('\n'),
          );
          for (const signal of ['SIGINT', 'SIGTERM'] as const) {
            process.once(signal, () => void emulator.close().finally(() => process.exit(0)));
          }
        }),
    );
}
