// Every `ladder` command as registered (src/cli/commands/index.ts), for tests that must cover
// each one: a new subcommand is covered without touching them.
import { Command } from 'commander';
import { COMMANDS } from '../../src/cli/commands/index.js';

/** Every command under `ladder`, as the words that name it (`['server', 'access-config']`). */
export async function commandTree(): Promise<Array<{ path: string[]; cmd: Command }>> {
  const program = new Command('ladder');
  for (const c of COMMANDS) (await c.load())(program);
  const out: Array<{ path: string[]; cmd: Command }> = [];
  const walk = (cmd: Command, path: string[]): void => {
    for (const sub of cmd.commands) {
      const p = [...path, sub.name()];
      out.push({ path: p, cmd: sub });
      walk(sub, p);
    }
  };
  walk(program, []);
  return out;
}
