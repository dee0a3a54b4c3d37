import type { Command } from 'commander';

// Placeholder: replaced by the owner of `ladder client`.
export function registerClient(program: Command): void {
  program.command('client').description('(not yet implemented)');
}
