/**
 * The parsers for what users type in flags and config files: host:port, ports, integers in a
 * range, seconds and short durations ("30d"). Pure. Every failure is a ParseError with a stable
 * code and a one-line message that names what was being parsed (`what`: a flag, or a config
 * field) and quotes the text; callers add the file name where there is one.
 */
import { isIP } from 'node:net';
import { CodedError } from './errors.js';

export type ParseErrorCode =
  | 'ERR_HOST_PORT' // not host:port, [ipv6]:port or a port
  | 'ERR_PORT' // a port number outside the allowed range, or not a number
  | 'ERR_INTEGER' // not an integer in the allowed range
  | 'ERR_SECONDS' // not a number of seconds in the allowed range
  | 'ERR_DURATION' // not a duration like 30d
  | 'ERR_SIZE' // not a size with a unit like 10GB
  | 'ERR_RATE' // not a rate with a unit like 10Mbit
  | 'ERR_DATE'; // not an ISO 8601 date or date-time, or an impossible one (2027-02-30)

export class ParseError extends CodedError<ParseErrorCode> {
  override readonly name = 'ParseError';
}

/** The longest timeout or limit period anything accepts: one week, in seconds. */
export const MAX_SECONDS = 7 * 24 * 3600;

/** "1080" -> 1080 within min..max; `what` names the flag or field in the error. */
export function parseIntInRange(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max)
    throw new ParseError('ERR_INTEGER', `${what} must be an integer in ${min}..${max}, got "${text}"`);
  return n;
}

/** A port number, 0..65535 (0: pick a free port) unless `min` says 1. */
export function parsePort(text: string, what: string, min: 0 | 1 = 0): number {
  try {
    return parseIntInRange(text, what, min, 65535);
  } catch (err) {
    throw new ParseError('ERR_PORT', (err as Error).message);
  }
}

/** A positive number of seconds (fractions allowed) up to `max`, as given (not milliseconds). */
export function parseSeconds(text: string, what: string, max = MAX_SECONDS): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(n > 0) || n > max)
    throw new ParseError('ERR_SECONDS', `${what} must be a number of seconds in (0, ${max}], got "${text}"`);
  return n;
}

const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** "30d", "12h", "90s", "2w", "5m" in milliseconds; undefined when the text is not of that form. */
export function durationMs(text: string): number | undefined {
  const m = /^(\d+)([smhdw])$/.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : undefined;
}

/** Like durationMs, but a wrong form is a ParseError naming `what`. */
export function parseDuration(text: string, what: string): number {
  const ms = durationMs(text);
  if (ms === undefined)
    throw new ParseError(
      'ERR_DURATION',
      `${what} must be a number followed by s, m, h, d or w (e.g. 30d), got "${text}"`,
    );
  return ms;
}

/**
 * Byte units: decimal (kB = 1000) and binary (KiB = 1024); case-insensitive. The one-letter forms
 * (10G, 500M) are decimal, as the CLI accepted them before units became required.
 */
const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  t: 1e12,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * A positive size with a unit: "10GB", "500MiB", "1.5TB", "2048 B". A bare number is refused
 * (is "10" bytes or gigabytes?), so are zero and negative sizes; callers handle "none"/"0".
 */
export function parseSize(text: string, what: string): number {
  const fail = (why: string): never => {
    throw new ParseError('ERR_SIZE', `${what} must be ${why}, got "${text}"`);
  };
  const m = /^\s*([-+]?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  if (!m) return fail('a positive size like 10GB, 500MiB or 1.5TB');
  if (Number(m[1]) <= 0) return fail('a positive size like 10GB');
  if (m[2] === '') return fail('a size with a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB) like 10GB');
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return fail('a size with a unit B, kB, MB, GB, TB, KiB, MiB, GiB or TiB');
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) return fail('at most 8 PB');
  if (n < 1) return fail('at least 1 byte');
  return n;
}

/** Rate prefixes: decimal (k, M, G, T; either case) or, with bytes, binary (Ki, Mi, Gi, Ti). */
const RATE_PREFIX: Readonly<Record<string, number>> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/** The smallest rate a key may be limited to: below it a TCP connection would time out. */
export const MIN_RATE = 1024;

/**
 * A positive rate with a unit, in bytes per second: "10Mbit" (also "10Mbps", "10 Mbit/s"),
 * "500kbit", "2MB/s", "1.5MiB/s". A bare number is refused (bits or bytes?). At least 1 KiB/s.
 */
export function parseRate(text: string, what: string): number {
  const fail = (why: string): never => {
    throw new ParseError('ERR_RATE', `${what} must be ${why}, got "${text}"`);
  };
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z/]*)\s*$/.exec(text);
  if (!m || Number(m[1]) <= 0) return fail('a positive rate like 10Mbit, 500kbit or 2MB/s');
  // Bits are "bit", "bps" or a lower-case "b/s"; bytes an upper-case "B/s" or "Bps" (10Mb/s is
  // 10 megabits a second, 10MB/s and 10MBps 10 megabytes, as people write them).
  const u = /^([kKmMgGtT]?)(i?)(bits?(?:\/s)?|bps|b\/s|B\/s|Bps)$/.exec(m[2]!);
  const bytes = u !== null && (u[3] === 'B/s' || u[3] === 'Bps');
  if (u === null || (u[2] === 'i' && (!bytes || u[1] === '')))
    return fail(
      'a rate with a unit: kbit, Mbit, Gbit (also Mbps, Mb/s) or kB/s, MB/s, KiB/s, MiB/s, like 10Mbit',
    );
  const scale = u[1]!.toLowerCase();
  const prefix = u[2] === 'i' ? 2 ** (10 * ' kmgt'.indexOf(scale)) : RATE_PREFIX[scale]!;
  const per = bytes ? prefix : prefix / 8;
  const n = Math.round(Number(m[1]) * per);
  if (!Number.isSafeInteger(n) || n > 2 ** 40) return fail('at most 1 TiB/s');
  if (n < MIN_RATE) return fail('at least 1 KiB/s (8.2kbit)');
  return n;
}

/** A rate in bytes per second as people read it: "10 Mbit/s" when it is a whole number of them. */
export function formatRate(bytesPerSecond: number): string {
  const bits = bytesPerSecond * 8;
  for (const [unit, size] of [
    ['Gbit/s', 1e9],
    ['Mbit/s', 1e6],
    ['kbit/s', 1e3],
  ] as const)
    if (bits >= size) {
      const v = bits / size;
      return `${Number.isInteger(v) ? v : v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, '')} ${unit}`;
    }
  return `${bits} bit/s`;
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

/**
 * An ISO 8601 date ("2026-12-31", midnight UTC) or date-time ("2026-12-31T18:00", seconds and
 * fractions optional, "Z" or "+02:00"; without a zone it is UTC), in milliseconds. Every field is
 * checked, so "2027-02-30" is refused with the reason instead of rolling over into March.
 */
export function parseIsoDate(text: string, what: string): number {
  const fail = (why: string): never => {
    throw new ParseError('ERR_DATE', `${what} "${text}": ${why}`);
  };
  const m =
    /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.exec(
      text.trim(),
    );
  if (!m) return fail('expected an ISO 8601 date (2026-12-31) or date-time (2026-12-31T18:00Z)');
  const [y, mo, d, h = 0, mi = 0, sec = 0] = [m[1], m[2], m[3], m[4], m[5], m[6]].map((v) =>
    v === undefined ? undefined : Number(v),
  ) as number[];
  if (mo! < 1 || mo! > 12) return fail(`there is no month ${mo}`);
  const days = new Date(Date.UTC(y!, mo!, 0)).getUTCDate();
  if (d! < 1 || d! > days) return fail(`${MONTHS[mo! - 1]} ${y} has ${days} days`);
  if (h > 23) return fail(`there is no hour ${h}`);
  if (mi > 59) return fail(`there is no minute ${mi}`);
  if (sec > 59) return fail(`there is no second ${sec}`);
  let offsetMin = 0;
  const zone = m[8];
  if (zone && zone.toUpperCase() !== 'Z') {
    const z = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
    if (Number(z[2]) > 18 || Number(z[3]) > 59) return fail(`there is no time zone offset ${zone}`);
    offsetMin = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3]));
  }
  const frac = m[7] ? Math.floor(Number(m[7]) * 1000) : 0;
  return Date.UTC(y!, mo! - 1, d!, h, mi, sec, frac) - offsetMin * 60_000;
}

/** A moment: an ISO 8601 date or date-time, or a duration from `now` ("30d", "+12h"). */
export function parseMoment(text: string, what: string, now: number): number {
  const rel = durationMs(text.trim().replace(/^\+/, ''));
  if (rel !== undefined) return now + rel;
  if (!/^\d{4}-/.test(text.trim()))
    throw new ParseError(
      'ERR_DATE',
      `${what} must be a date (2026-12-31), a date-time (2026-12-31T18:00Z) or a duration from now (30d, 12h, 2w), got "${text}"`,
    );
  return parseIsoDate(text, what);
}

export interface HostPort {
  host: string;
  port: number;
}

export interface HostPortOptions {
  /**
   * Listen addresses: the host when the text is only a port (or ":port"). A bare IPv6 literal is
   * refused (is "::1:80" a host or a host and a port?): write [::1]:80.
   */
  defaultHost?: string;
  /** Destinations: the port when the text is only a host (a bare IPv6 literal is a host). */
  defaultPort?: number;
  /** Lowest port accepted: 0 (default, "pick one") for listen addresses, 1 for destinations. */
  minPort?: 0 | 1;
}

/**
 * "host:port", "[v6]:port", and, as the options allow, a bare port (listen addresses, with
 * `defaultHost`) or a bare host (destinations, with `defaultPort`). `what` names the flag or field.
 */
export function parseHostPort(text: string, what: string, opts: HostPortOptions = {}): HostPort {
  const listen = opts.defaultHost !== undefined;
  const min = opts.minPort ?? 0;
  const fail = (why: string): never => {
    throw new ParseError('ERR_HOST_PORT', `${what} "${text}": ${why}`);
  };
  const s = text.trim();
  let host: string | undefined;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  const hostAndPort = /^([^:[\]\s]*):(\d+)$/.exec(s);
  if (bracket) {
    if (isIP(bracket[1]!) !== 6) fail('bracketed host is not an IPv6 address');
    host = bracket[1]!;
    portText = bracket[2];
  } else if (hostAndPort) {
    host = hostAndPort[1] || opts.defaultHost;
    portText = hostAndPort[2];
  } else if (listen && /^\d+$/.test(s)) {
    host = opts.defaultHost;
    portText = s;
  } else if (!listen && (isIP(s) === 6 || /^[^:[\]\s]+$/.test(s))) {
    host = s;
  }
  if (host === undefined)
    return fail(listen ? 'expected host:port, [ipv6]:port or a port number' : 'expected host:port');
  const port = portText !== undefined ? Number(portText) : opts.defaultPort;
  if (port === undefined) return fail('a port is required');
  if (!Number.isInteger(port) || port < min || port > 65535) return fail(`port outside ${min}..65535`);
  return { host, port };
}

const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

/** A host name (RFC 1123 labels, an optional final dot) or an IPv4/IPv6 address. */
export function isHostName(h: string): boolean {
  if (isIP(h) !== 0) return true;
  const name = h.endsWith('.') ? h.slice(0, -1) : h;
  return name.length > 0 && name.length <= 253 && name.split('.').every((l) => LABEL.test(l));
}

/** host:port for messages, with IPv6 literals in brackets. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
