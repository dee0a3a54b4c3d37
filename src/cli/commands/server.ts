import type { Command } from 'commander';

// Placeholder: replaced by the owner of `ladder server`.
export function registerServer(program: Command): void {
  program.command('server').description('(not yet implemented)');
}
