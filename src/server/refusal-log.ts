import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { RepeatLimiter } from '../shared/repeat-limiter.js';
import type { ConnectionClosedEvent, ConnectionStatus } from './events.js';

/** The same refusal (reason and key) is logged at most once per this window, then counted. */
export const DEFAULT_REFUSAL_REPEAT_MS = 10_000;
/** Connections that authenticated with no key are reported together at most once per this window. */
export const DEFAULT_UNAUTHENTICATED_REPORT_MS = 60_000;

export interface RefusalLogOptions {
  log: Logger;
  clock: Clock;
  repeatMs?: number;
  unauthenticatedMs?: number;
}

const UNAUTHENTICATED = 'unauthenticated';
const UNAUTHENTICATED_WHY =
  'wrong, disabled, expired or over-quota key, a key at its device limit, or probes';

/** Why an unauthenticated connection failed, in words, for the breakdown of the aggregate. */
const UNAUTHENTICATED_DETAIL: Partial<Record<ConnectionStatus, string>> = {
  ERR_REPLAY_CLIENT: 'replayed',
  ERR_REPLAY_SERVER: 'reflected (our own response sent back)',
  ERR_TIMESTAMP: 'dated more than 30 s off (2022 timestamp: a wrong client clock, or a replay)',
};

/** The line for a refusal of an authenticated connection, or undefined when it is not one to tell. */
function keyedLine(status: ConnectionStatus, key: string, errno: string | undefined): string | undefined {
  switch (status) {
    case 'ERR_FORBIDDEN':
      return `refused a connection to a private address (loopback/LAN/link-local) for key ${key}: start the server with --allow-private to allow it for a local test`;
    case 'ERR_CONNECT':
      return `could not reach the destination for key ${key}: ${errno ?? 'connect failed'}`;
    case 'ERR_RESOLVE':
      return `could not resolve the destination name for key ${key}`;
    case 'ERR_CIPHER':
    case 'ERR_PAYLOAD_SIZE':
      return `a connection with key ${key} failed authentication after its first bytes (data corrupted or altered on the way)`;
    case 'ERR_HEADER':
      return `a connection with key ${key} sent a malformed 2022 header`;
    default:
      return undefined; // OK, operator closes, relay errors: ordinary, not refusals
  }
}

/**
 * Tells the operator, at info (the default level), why connections were refused, so a refused
 * local test or a key that stopped working does not fail in silence. Lines name the key by id
 * and never the destination, the client's address or a secret. Authenticated refusals are
 * logged per reason and key, at most once per `repeatMs` with a count of the repeats;
 * connections that authenticated with no key (a wrong or removed key, or a scan) only as one
 * aggregate at most once per `unauthenticatedMs`, so a scan cannot flood the log. Logging does
 * not change what the client sees (the uniform failure reaction stays).
 */
export class RefusalLog {
  readonly #log: Logger;
  readonly #keyed: RepeatLimiter;
  readonly #unauth: RepeatLimiter;
  readonly #unauthMs: number;

  constructor(opts: RefusalLogOptions) {
    const log = (this.#log = opts.log);
    const repeatMs = opts.repeatMs ?? DEFAULT_REFUSAL_REPEAT_MS;
    const unauthMs = (this.#unauthMs = opts.unauthenticatedMs ?? DEFAULT_UNAUTHENTICATED_REPORT_MS);
    this.#keyed = new RepeatLimiter({
      clock: opts.clock,
      windowMs: repeatMs,
      // The kind is the line itself (it names the reason and the key, nothing else).
      onRepeats: (line, count) =>
        log.info({ repeats: count }, `${line} (${count} more in the last ${seconds(repeatMs)})`),
    });
    this.#unauth = new RepeatLimiter({
      clock: opts.clock,
      windowMs: unauthMs,
      onRepeats: (_kind, count, details) => {
        const parts = [...details].map(([what, n]) => `${n} ${what}`);
        const of = parts.length > 0 ? `; of them ${parts.join(', ')}` : '';
        log.info(
          { unauthenticated: count },
          `${count} more ${count === 1 ? 'connection' : 'connections'} did not authenticate with any key in the last ${seconds(unauthMs)} (${UNAUTHENTICATED_WHY})${of}`,
        );
      },
    });
  }

  /** Note a closed connection; logs when it was a refusal worth telling. */
  closed(e: ConnectionClosedEvent): void {
    if (e.status === 'OK' || e.status === 'ERR_CLOSED' || e.status === 'ERR_RELAY') return;
    if (e.keyId === undefined) return this.#unauthenticated(e);
    if (!this.#log.isLevelEnabled('info')) return;
    const line = keyedLine(e.status, JSON.stringify(e.keyId), e.errno);
    if (line === undefined) return;
    if (!this.#keyed.hit(line)) return;
    this.#log.info({ status: e.status, keyId: e.keyId }, line);
  }

  #unauthenticated(e: ConnectionClosedEvent): void {
    // A connection that sent nothing tried no key (a port check, a client that gave up early).
    if (e.bytesUp === 0 || !this.#log.isLevelEnabled('info')) return;
    const detail = UNAUTHENTICATED_DETAIL[e.status];
    if (!this.#unauth.hit(UNAUTHENTICATED, detail)) return;
    this.#log.info(
      { status: e.status },
      `a connection did not authenticate with any key (${UNAUTHENTICATED_WHY})${detail ? `; it was ${detail}` : ''}; more are counted and reported at most once per ${seconds(this.#unauthMs)}`,
    );
  }

  /** Report pending counts and stop the timers (server close). */
  close(): void {
    this.#keyed.flush();
    this.#unauth.flush();
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
