/**
 * Connection events of a data-plane worker, packed for the trip to the main thread (issue 15,
 * session 12): a structured clone of one object per event costs the worker's serializer and the
 * main thread's deserializer a walk of every property name and value of every event; packed, a
 * report is two Float64Arrays (copied whole) and a table of the distinct strings (key ids, errno
 * names). The main thread unpacks them into the same AuthEvent and ConnectionClosedEvent objects
 * the hooks took before. LADDER_PACKED_EVENTS=0 posts the event objects as before.
 */
import { CONNECTION_STATUSES, type AuthEvent, type ConnectionClosedEvent } from '../events.js';
import { envSwitch } from '../../shared/env.js';

/** Numbers per packed AuthEvent: key, timeToAuthMs, keysTried, recent, edition (0: none). */
const AUTH = 5;
/** Numbers per packed closed event: status, key (-1), probe, timeToAuthMs (NaN), durationMs, up, down, errno (-1). */
const CLOSED = 8;
const STATUS_INDEX = new Map<string, number>(CONNECTION_STATUSES.map((s, i) => [s, i]));

/** Events packed by EventPacker.take(). */
export interface PackedEvents {
  readonly strings: readonly string[];
  readonly auth: Float64Array;
  readonly closed: Float64Array;
}

/** The worker's side: collects events between two reports. */
export class EventPacker {
  #strings: string[] = [];
  #index = new Map<string, number>();
  #auth: number[] = [];
  #closed: number[] = [];

  get empty(): boolean {
    return this.#auth.length === 0 && this.#closed.length === 0;
  }

  #str(s: string | undefined): number {
    if (s === undefined) return -1;
    let i = this.#index.get(s);
    if (i === undefined) {
      i = this.#strings.push(s) - 1;
      this.#index.set(s, i);
    }
    return i;
  }

  authenticated(e: AuthEvent): void {
    this.#auth.push(this.#str(e.keyId), e.timeToAuthMs, e.keysTried, e.recent ? 1 : 0, e.edition ?? 0);
  }

  closed(e: ConnectionClosedEvent): void {
    this.#closed.push(
      STATUS_INDEX.get(e.status)!,
      this.#str(e.keyId),
      e.probe ? 1 : 0,
      e.timeToAuthMs ?? NaN,
      e.durationMs,
      e.bytesUp,
      e.bytesDown,
      this.#str(e.errno),
    );
  }

  /** What was collected since the last take(), and a fresh start. */
  take(): PackedEvents {
    const out = {
      strings: this.#strings,
      auth: new Float64Array(this.#auth),
      closed: new Float64Array(this.#closed),
    };
    this.#strings = [];
    this.#index = new Map();
    this.#auth = [];
    this.#closed = [];
    return out;
  }
}

/** The main thread's side: the events as the hooks take them. */
export function unpackEvents(p: PackedEvents): {
  authenticated: AuthEvent[];
  closed: ConnectionClosedEvent[];
} {
  const { strings, auth, closed } = p;
  const authenticated: AuthEvent[] = [];
  for (let i = 0; i + AUTH <= auth.length; i += AUTH) {
    const edition = auth[i + 4]!;
    authenticated.push({
      keyId: strings[auth[i]!]!,
      timeToAuthMs: auth[i + 1]!,
      keysTried: auth[i + 2]!,
      recent: auth[i + 3] === 1,
      ...(edition === 2017 || edition === 2022 ? { edition } : {}),
    });
  }
  const out: ConnectionClosedEvent[] = [];
  for (let i = 0; i + CLOSED <= closed.length; i += CLOSED) {
    const [key, toAuth, errno] = [closed[i + 1]!, closed[i + 3]!, closed[i + 7]!];
    out.push({
      status: CONNECTION_STATUSES[closed[i]!]!,
      keyId: key < 0 ? undefined : strings[key],
      probe: closed[i + 2] === 1,
      timeToAuthMs: Number.isNaN(toAuth) ? undefined : toAuth,
      durationMs: closed[i + 4]!,
      bytesUp: closed[i + 5]!,
      bytesDown: closed[i + 6]!,
      ...(errno >= 0 ? { errno: strings[errno]! } : {}),
    });
  }
  return { authenticated, closed: out };
}

/** Connection events are packed unless LADDER_PACKED_EVENTS=0 (read once per worker). */
export function packedEventsFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_PACKED_EVENTS', env);
}
