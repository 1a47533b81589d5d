#!/usr/bin/env node
import { Command } from 'commander';
import { registerEmulatorCommand } from './emulator-command.js';
import { registerKeysCommand } from './keys-command.js';
import { registerMigrateCommand } from './migrate-command.js';
import { registerServeCommand } from './serve-command.js';
import { registerSweepCommand } from './sweep-command.js';
import { registerTryCommands } from './try-commands.js';
import { registerWebhooksCommand } from './webhooks-command.js';

const program = new Command()
  .name('behalf')
  .description('Act for your Google users while they are offline.')
  .showHelpAfterError();

registerServeCommand(program);
registerEmulatorCommand(program);
registerKeysCommand(program);
registerMigrateCommand(program);
registerSweepCommand(program);
registerTryCommands(program);
registerWebhooksCommand(program);

await program.parseAsync(process.argv);
