#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerEmulatorCommand } from './emulator-command.js';
import { registerKeysCommand } from './keys-command.js';
import { registerMigrateCommand } from './migrate-command.js';
import { registerServeCommand } from './serve-command.js';
import { registerSweepCommand } from './sweep-command.js';
import { registerTryCommands } from './try-commands.js';
import { registerWebhooksCommand } from './webhooks-command.js';

// package.json is two folders up from both src/cli/main.ts and dist/cli/main.js.
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command()
  .name('behalf')
  .description('Act for your Google users while they are offline.')
  .version(version, '-V, --version', 'print the version of behalf')
  .showHelpAfterError();

registerServeCommand(program);
registerEmulatorCommand(program);
registerKeysCommand(program);
registerMigrateCommand(program);
registerSweepCommand(program);
registerTryCommands(program);
registerWebhooksCommand(program);

await program.parseAsync(process.argv);
