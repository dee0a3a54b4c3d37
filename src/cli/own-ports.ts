/**
 * Two of the server's own listeners given one port: refused in one line naming both settings.
 * Left to the kernel, the second listen failed with EADDRINUSE, which the CLI words as "another
 * process listens there" — the process was ladder itself.
 */
import { isIPv6 } from 'node:net';
import { bindErrorCode, explainBindError } from '../shared/listen.js';
import { formatHostPort } from '../shared/parse.js';
import { UsageError } from './errors.js';

/** A listener: the flag (or config field) that set its port, the port, and its host when given. */
export type OwnPort = [name: string, port: number | undefined, host?: string | undefined];

/** A listen host without IPv6 brackets; '' stays '' (every address). */
function bare(h: string): string {
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/** An IPv6 literal that is not an IPv4-mapped one (`::ffff:a.b.c.d`): never an IPv4 socket's. */
function ipv6Only(h: string): boolean {
  return isIPv6(h) && !/^::ffff:/i.test(h);
}

/**
 * Whether two listen hosts can collide: either is unset or '' or '::' (Node's '::' is dual-stack:
 * it takes the port on every IPv4 address too), or they are the same; '0.0.0.0' collides with
 * any address but an IPv6 one (0.0.0.0:443 and [::1]:443 are two sockets the kernel allows).
 */
function overlap(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  const x = bare(a);
  const y = bare(b);
  if (x === y || x === '' || y === '' || x === '::' || y === '::') return true;
  if (x === '0.0.0.0') return !ipv6Only(y);
  if (y === '0.0.0.0') return !ipv6Only(x);
  return false;
}

/** Throws when two entries (ports other than 0, which picks a free one) share a port and can share an address. */
export function checkOwnPortsDistinct(ports: readonly OwnPort[]): void {
  const given = ports.filter(([, port]) => port !== undefined && port !== 0);
  for (let i = 0; i < given.length; i++) {
    for (let j = 0; j < i; j++) {
      const [a, portA, hostA] = given[j]!;
      const [b, portB, hostB] = given[i]!;
      if (portA === portB && overlap(hostA, hostB))
        throw new UsageError(`${twoSettings(a, b)} both name port ${portA}: give each listener its own port`);
    }
  }
}

/**
 * `A and B` for two settings' names; two fields of one config file name the file once
 * (`FILE: port and web.port`, not `FILE: port and FILE: web.port`).
 */
export function twoSettings(a: string, b: string): string {
  const i = a.lastIndexOf(': ');
  const j = b.lastIndexOf(': ');
  return i > 0 && i === j && a.slice(0, i) === b.slice(0, j) ? `${a} and ${b.slice(j + 2)}` : `${a} and ${b}`;
}

/**
 * A listen failure on an address the user chose, as one line: where, what the code means and, for
 * a port in use, the setting (of `ports`) that named it, to change; undefined for other errors.
 */
export function listenRefusal(err: unknown, ports: readonly OwnPort[]): UsageError | undefined {
  const code = bindErrorCode(err);
  if (!code) return undefined;
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const where = e.address !== undefined && e.port !== undefined ? formatHostPort(e.address, e.port) : '?';
  const setting = ports.find(([, port]) => port !== undefined && port === e.port)?.[0];
  const change = code === 'EADDRINUSE' && setting ? `; choose another port with ${setting}` : '';
  return new UsageError(`cannot listen on ${where}: ${explainBindError(code, e.port)}${change}`);
}
