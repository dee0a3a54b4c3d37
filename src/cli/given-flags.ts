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

/**
 * A subcommand's refusal of its parent's flags (commander hands the parent every flag it knows,
 * wherever it stands: `server access-config --show-urls` set the server's --show-urls, unused):
 * `PATH does not take --a (an option of `ladder PARENT` itself): HINT`; `allowed` are the parent's flags
 * the subcommand reads (optsWithGlobals); `hints` end the line for a flag a user may well mean here.
 */
export function refuseParentFlags(
  cmd: Command,
  path: string,
  allowed: readonly string[],
  hints: Readonly<Record<string, string>> = {},
): void {
  if (cmd.parent === null) return;
  const ignored = givenFlags(cmd.parent).filter((f) => !allowed.includes(f));
  if (ignored.length === 0) return;
  const what = ignored.length === 1 ? 'an option' : 'options';
  const hint = ignored.map((f) => hints[f]).find((h) => h !== undefined);
  throw new UsageError(
    `${path} does not take ${ignored.join(', ')} (${what} of \`ladder ${cmd.parent.name()}\` itself)${hint ? `: ${hint}` : ''}`,
  );
}
