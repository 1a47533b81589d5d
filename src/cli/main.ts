#!/usr/bin/env node
import { Command } from 'commander';
import { registerEmulatorCommand } from './emulator-command.js';

const program = new Command()
  .name('behalf')
  .description('Act for your Google users while they are offline.')
  .showHelpAfterError();

registerEmulatorCommand(program);

await program.parseAsync(process.argv);
