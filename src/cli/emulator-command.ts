import type { Command } from 'commander';

export function registerEmulatorCommand(program: Command): void {
  program.command('emulator').description('Run the local Google emulator (work in progress)');
}
