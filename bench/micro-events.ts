/**
 * What a data-plane worker's connection events cost on their way to the main thread (issue 15,
 * session 12): one report of N connections (an AuthEvent and a ConnectionClosedEvent each) as
 * the structured clone of the event objects (LADDER_PACKED_EVENTS=0) and packed (event-batch.ts:
 * packed in the worker, cloned, unpacked on the main thread). structuredClone runs the same V8
 * serializer and deserializer as postMessage, both halves in this thread. CPU time per event.
 *   node --import tsx bench/micro-events.ts [--per-report 250] [--reports 400]
 */
import type { AuthEvent, ConnectionClosedEvent } from '../src/server/events.js';
import { EventPacker, unpackEvents } from '../src/server/workers/event-batch.js';
import { posInt } from './args.js';

const perReport = posInt('--per-report', 250);
const reports = posInt('--reports', 400);

const auth = (i: number): AuthEvent => ({
  keyId: `key-${i % 7}`,
  timeToAuthMs: i % 3,
  keysTried: 1,
  recent: true,
  edition: 2017,
});
const closed = (i: number): ConnectionClosedEvent => ({
  status: 'OK',
  keyId: `key-${i % 7}`,
  probe: false,
  timeToAuthMs: i % 3,
  durationMs: 12 + (i % 5),
  bytesUp: 100 + i,
  bytesDown: 80 + i,
});

function cpuUs(fn: () => void): number {
  const t0 = process.cpuUsage();
  fn();
  const t = process.cpuUsage(t0);
  return t.user + t.system;
}

function objects(): void {
  for (let r = 0; r < reports; r++) {
    const a: AuthEvent[] = [];
    const c: ConnectionClosedEvent[] = [];
    for (let i = 0; i < perReport; i++) {
      a.push(auth(i));
      c.push(closed(i));
    }
    const got = structuredClone({ t: 'events', opened: perReport, authenticated: a, closed: c });
    if (got.closed.length !== perReport) throw new Error('lost events');
  }
}

function packed(): void {
  const p = new EventPacker();
  for (let r = 0; r < reports; r++) {
    for (let i = 0; i < perReport; i++) {
      p.authenticated(auth(i));
      p.closed(closed(i));
    }
    const m = structuredClone({
      t: 'events',
      opened: perReport,
      authenticated: [],
      closed: [],
      packed: p.take(),
    });
    if (unpackEvents(m.packed).closed.length !== perReport) throw new Error('lost events');
  }
}

for (let round = 0; round < 3; round++) {
  const o = cpuUs(objects) / (reports * perReport);
  const k = cpuUs(packed) / (reports * perReport);
  console.log(
    `round ${round + 1}: µs per connection's events, objects ${o.toFixed(2)}, packed ${k.toFixed(2)} (${(k / o).toFixed(2)}x)`,
  );
}
