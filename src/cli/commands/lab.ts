import type { Command } from 'commander';

// Placeholder: replaced by the owner of `ladder lab`.
export function registerLab(program: Command): void {
  program.command('lab').description('(not yet implemented)');
}
