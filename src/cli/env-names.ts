import { didYouMean } from '../protocol/near-miss.js';
import { ENV_SETTINGS, ENV_SWITCHES } from '../shared/env.js';
import { printable } from './terminal.js';

/** Every LADDER_* name ladder, its build and its tests read (src/shared/env.ts). */
export const KNOWN_ENV_NAMES: ReadonlySet<string> = new Set([...ENV_SWITCHES, ...ENV_SETTINGS]);

/**
 * One line per LADDER_* variable in `env` that nothing of ladder's reads, with the known name it
 * is a misspelling of when there is one: a misspelt LADDER_NATIVE_RELAY=0 was silently ignored, so the
 * addon stayed on while the user believed it off. Only the name is printed, never the value (it
 * may be a password or a store URL). Names are sorted so the output is stable.
 */
export function unknownEnvLines(env: NodeJS.ProcessEnv = process.env): string[] {
  return Object.keys(env)
    .filter((name) => name.startsWith('LADDER_') && !KNOWN_ENV_NAMES.has(name))
    .sort()
    .map((name) => `${printableName(name)} is not a Ladder setting${didYouMean(name, KNOWN_ENV_NAMES)}`);
}

/** A variable's name may hold anything but '=' and NUL: control bytes escaped, 60 characters at most. */
function printableName(name: string): string {
  return printable(name.length > 60 ? `${name.slice(0, 60)}…` : name);
}
