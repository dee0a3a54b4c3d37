/**
 * `ladder keys devices ID N|none` and `ladder keys speed ID RATE|none` (docs/limits.md), and the
 * parsing `keys add --devices N --speed RATE` shares with them. Every refusal is one line (exit 2).
 */
import type { Command } from 'commander';
import { formatRate, ParseError, parseRate } from '../../../shared/parse.js';
import { ladderCommand } from '../../../shared/invocation.js';
import { MAX_DEVICE_LIMIT, type LimitField } from '../../../store/index.js';
import { UsageError } from '../../errors.js';
import { printable } from '../../terminal.js';
import type { KeysBackend, KeyView } from './backend.js';
import { keyLabel } from './format.js';

const NONE = ['none', 'off'];

/** A device limit: a whole number 1..10000 ("0" refused: it reads as "block the key"). */
export function parseDevices(text: string, what: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t) && Number(t) >= 1 && Number(t) <= MAX_DEVICE_LIMIT) return Number(t);
  if (/^0+$/.test(t))
    throw new UsageError(
      `${what} must be at least 1, got "0" (to stop a key use ${ladderCommand()} keys disable; for no limit: none)`,
    );
  throw new UsageError(
    `${what} must be a whole number of devices from 1 to ${MAX_DEVICE_LIMIT}, got "${printable(text)}"`,
  );
}

/** A speed limit: a rate with a unit (parseRate: 10Mbit, 2MB/s; a bare number is refused: bits or bytes?). */
export function parseSpeed(text: string, what: string): number {
  try {
    return parseRate(text, what);
  } catch (err) {
    if (err instanceof ParseError) throw new UsageError(printable(err.message));
    throw err;
  }
}

/** What the key has now, as the confirmation line says it. */
function limitNow(k: KeyView, field: LimitField): string {
  if (field === 'deviceLimit')
    return k.deviceLimit
      ? `at most ${k.deviceLimit.devices} device${k.deviceLimit.devices === 1 ? '' : 's'} (client addresses) at once`
      : 'device limit removed (any number of devices)';
  return k.speedLimit
    ? `speed limit ${formatRate(k.speedLimit.bytesPerSecond)} each way`
    : 'speed limit removed (no limit)';
}

/** The two verbs, on `keys` (`sub` makes a sub-command with one-line parse errors). */
export function registerLimitCommands(
  sub: (name: string, negative?: (arg: string) => string) => Command,
  withBackend: (cmd: Command, fn: (b: KeysBackend) => Promise<void>) => Promise<void>,
  say: (line: string) => void,
): void {
  const verbs = [
    {
      name: 'devices',
      field: 'deviceLimit' as const,
      arg: '<count|none>',
      what: 'device limit',
      parse: parseDevices,
      description:
        'limit how many devices (client addresses; an IPv6 /64 counts as one) use a key at once on each server: a whole number 1..10000, or none',
    },
    {
      name: 'speed',
      field: 'speedLimit' as const,
      arg: '<rate|none>',
      what: 'speed limit',
      parse: parseSpeed,
      description:
        "limit a key's speed on each server, each way, all its connections together: a rate with a unit (10Mbit, 500kbit, 2MB/s, 1.5MiB/s; at least 1 KiB/s), or none",
    },
  ];
  for (const v of verbs) {
    sub(
      v.name,
      (arg) =>
        `${v.what} must be ${v.name === 'devices' ? `a whole number of devices from 1 to ${MAX_DEVICE_LIMIT}` : 'a positive rate like 10Mbit'}, got "${arg}"`,
    )
      .description(v.description)
      .argument('<id>')
      .argument(v.arg)
      .action(async (id: string, text: string, _o: unknown, cmd: Command) => {
        const value = NONE.includes(text.trim().toLowerCase()) ? null : v.parse(text, v.what);
        await withBackend(cmd, async (b) => {
          await b.keyLimit(id, v.field, value);
          const k = await b.get(id);
          say(`${keyLabel(k)}: ${limitNow(k, v.field)}`);
        });
      });
  }
}
