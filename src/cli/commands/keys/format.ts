/** How `ladder keys` prints keys: the table, sizes, and the one-line confirmations. */
import { formatBinaryBytes } from '../../../shared/bytes.js';
import { formatRate } from '../../../shared/parse.js';
import { printable } from '../../terminal.js';
import type { LimitPeriod } from '../../../store/index.js';
import type { KeyView } from './backend.js';

/** Sizes in binary units, as the subscription page and the refusal messages print them. */
export const formatBytes = formatBinaryBytes;

export function formatTable(keys: readonly KeyView[]): string {
  const rows = [
    [
      'ID',
      'NAME',
      'STATE',
      'USED (window)',
      'LIMIT',
      '30 DAYS',
      'EXPIRES',
      'LAST SEEN',
      'DEVICE LIMIT',
      'SPEED LIMIT',
      'PREFIX',
    ],
  ];
  for (const k of keys) {
    rows.push([
      printable(k.id),
      k.name ? printable(k.name) : '-',
      k.state ?? (k.enabled ? 'active' : 'disabled'),
      k.dataUsed ? formatBytes(k.dataUsed.bytes) : '-',
      k.dataLimit
        ? `${formatBytes(k.dataLimit.bytes)}${k.dataLimitPeriod && k.dataLimitPeriod !== 'rolling30d' ? `/${k.dataLimitPeriod}` : ''}`
        : 'none',
      formatBytes(k.trailing30DaysBytes ?? 0),
      k.expiresAt ? k.expiresAt.replace(/:\d\d\.\d{3}Z$/, 'Z') : 'never',
      k.lastTrafficSeenTimestampMs
        ? new Date(k.lastTrafficSeenTimestampMs).toISOString().replace(/:\d\d\.\d{3}Z$/, 'Z')
        : 'never',
      k.deviceLimit ? deviceCell(k.deviceLimit.devices, k.devicesInUse) : 'none',
      k.speedLimit ? formatRate(k.speedLimit.bytesPerSecond) : 'none',
      k.prefix === undefined ? '-' : printable(k.prefix),
    ]);
  }
  return alignColumns(rows);
}

/** "3", or with the server's count (`--api`: the management API's devicesInUse) "3 (2 in use)". */
function deviceCell(limit: number, inUse: number | undefined): string {
  return inUse === undefined ? String(limit) : `${limit} (${inUse} in use)`;
}

/** Rows of cells as left-aligned columns two spaces apart, one line each (the first row: headings). */
export function alignColumns(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, c) => cell.padEnd(widths[c]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** Key 2 "Alice", for confirmations; the name escaped for the terminal. */
export function keyLabel(k: { id: string; name?: string }): string {
  return `key ${printable(k.id)}${k.name ? ` "${printable(k.name)}"` : ''}`;
}

/** What each limit period means, in the words of the confirmations and the help. */
export const PERIOD_WORDS: Readonly<Record<LimitPeriod, string>> = {
  rolling30d: 'in any 30 days (rolling30d)',
  daily: 'per UTC day (daily)',
  weekly: 'per ISO week, from Monday 00:00 UTC (weekly)',
  monthly: 'per calendar month, UTC (monthly)',
};

/** "2027-03-01T00:00Z": minutes are enough for an expiry or a last-seen time. */
export function shortTime(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/:00\.000Z$/, 'Z')
    .replace(/\.\d{3}Z$/, 'Z');
}

/** The confirmation of `ladder keys limit`: the limit now in force and which period applies. */
export function limitConfirmation(k: KeyView, periodGiven: boolean): string {
  if (!k.dataLimit) return `${keyLabel(k)}: data limit removed (no limit)`;
  const period = (k.dataLimitPeriod ?? 'rolling30d') as LimitPeriod;
  const how = periodGiven ? 'as given' : 'kept from before; change it with --period';
  return `${keyLabel(k)}: data limit ${formatBytes(k.dataLimit.bytes)} ${PERIOD_WORDS[period]} (period ${how})`;
}

/** Apps that have the Shadowsocks-2022 ciphers, in the words of the notes and labels. */
const APPS_2022 = 'shadowsocks-rust, sing-box, Clash/mihomo, v2rayNG, Shadowrocket or the ladder client';

/**
 * Outline apps have SIP004 ciphers only (as the subscription's Outline format says): for a
 * Shadowsocks-2022 key, the note printed beside its URLs (`ssconf`: a dynamic key was printed
 * too); none for other keys.
 */
export function outlineNote(
  k: { id: string; method: string },
  count = 1,
  ssconf = false,
): string | undefined {
  if (!k.method.startsWith('2022-')) return undefined;
  const [who, whose] = count === 1 ? [`key ${printable(k.id)} uses`, 'its'] : ['these keys use', 'their'];
  const what = ssconf ? 'ss:// and ssconf:// keys do' : count === 1 ? 'ss:// key does' : 'ss:// keys do';
  return (
    `note: ${who} ${printable(k.method)} (Shadowsocks-2022), which Outline apps do not have: ` +
    `${whose} ${what} not work in them; use ${APPS_2022}`
  );
}
