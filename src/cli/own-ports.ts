/**
 * Two of the server's own listeners given one port: refused in one line naming both settings.
 * Left to the kernel, the second listen failed with EADDRINUSE, which the CLI words as "another
 * process listens there" — the process was ladder itself.
 */
import { UsageError } from './errors.js';

/** A listener: the flag (or config field) that set its port, the port, and its host when given. */
export type OwnPort = [name: string, port: number | undefined, host?: string | undefined];

const WILDCARD = new Set(['', '0.0.0.0', '::', '[::]']);

/** Whether two listen hosts can collide: either is unset or a wildcard, or they are the same. */
function overlap(a: string | undefined, b: string | undefined): boolean {
  return a === undefined || b === undefined || WILDCARD.has(a) || WILDCARD.has(b) || a === b;
}

/** Throws when two entries (ports other than 0, which picks a free one) share a port and can share an address. */
export function checkOwnPortsDistinct(ports: readonly OwnPort[]): void {
  const given = ports.filter(([, port]) => port !== undefined && port !== 0);
  for (let i = 0; i < given.length; i++) {
    for (let j = 0; j < i; j++) {
      const [a, portA, hostA] = given[j]!;
      const [b, portB, hostB] = given[i]!;
      if (portA === portB && overlap(hostA, hostB))
        throw new UsageError(`${a} and ${b} both name port ${portA}: give each listener its own port`);
    }
  }
}
