import type { Command } from 'commander';

// Placeholder: replaced by the owner of `ladder keys`.
export function registerKeys(program: Command): void {
  program.command('keys').description('(not yet implemented)');
}
