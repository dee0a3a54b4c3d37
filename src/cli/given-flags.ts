/** Flags given together that do not go together: refused in one line rather than ignored. */
import type { Command } from 'commander';
import { UsageError } from './errors.js';

/** The long flags given on the command line, as given (`--no-socks`, not `--socks`). */
export function givenFlags(cmd: Command): string[] {
  const given = new Set<string>();
  for (const o of cmd.options) {
    const name = o.attributeName();
    if (cmd.getOptionValueSource(name) !== 'cli' || o.long === undefined) continue;
    // --x and --no-x share a value: name the one that set it.
    if (o.negate === (cmd.getOptionValue(name) === false)) given.add(o.long);
  }
  return [...given];
}

/**
 * With `flag` given, refuse every other flag but `allowed`: `FLAG WHY: drop --a, --b` (exit 2),
 * where a silent ignore would let the user think the others took effect.
 */
export function refuseBeside(cmd: Command, flag: string, allowed: readonly string[], why: string): void {
  const ignored = givenFlags(cmd).filter((f) => f !== flag && !allowed.includes(f));
  if (ignored.length > 0) throw new UsageError(`${flag} ${why}: drop ${ignored.join(', ')}`);
}
