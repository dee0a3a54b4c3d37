import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import type { Clock } from '../../src/shared/clock.js';
import { UpstreamDialError, DirectDialer, type Dialer } from '../../src/transport/dialer.js';
import { FailoverDialer } from '../../src/client/routing/failover.js';
import type { Endpoint } from '../../src/client/routing/endpoints.js';

/** Real timers, but now() can be pushed forward to skip a residual period. */
class OffsetClock implements Clock {
  offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
  setTimeout(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
    return setTimeout(fn, ms);
  }
  clearTimeout(t: unknown): void {
    clearTimeout(t as ReturnType<typeof setTimeout>);
  }
}

let echo: net.Server;
let sink: net.Server;
let echoPort = 0;
let sinkPort = 0;
const sockets = new Set<net.Socket>();

before(async () => {
  echo = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.pipe(s);
  });
  sink = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.resume(); // reads, never answers: a stalled path
  });
  echo.listen(0, '127.0.0.1');
  sink.listen(0, '127.0.0.1');
  await Promise.all([once(echo, 'listening'), once(sink, 'listening')]);
  echoPort = (echo.address() as net.AddressInfo).port;
  sinkPort = (sink.address() as net.AddressInfo).port;
});

after(() => {
  for (const s of sockets) s.destroy();
  echo.close();
  sink.close();
});

const DEST = { type: 'domain' as const, host: 'site.example', port: 443 };

/** A null-routed endpoint: the dial never completes until aborted. */
function blackhole(calls: { n: number }): Dialer {
  return {
    dial(_d, _f, signal) {
      calls.n++;
      return new Promise((_resolve, reject) => {
        signal?.addEventListener('abort', () => reject(new UpstreamDialError('ERR_ABORTED', 'aborted')), {
          once: true,
        });
      });
    },
  };
}

/** An endpoint that is really a local TCP server (the destination is ignored). */
function toPort(port: number, calls: { n: number }): Dialer {
  const direct = new DirectDialer();
  return {
    dial(_d, first, signal) {
      calls.n++;
      return direct.dial({ type: 'ipv4', host: '127.0.0.1', port }, first, signal);
    },
  };
}

async function roundTrip(d: Dialer, payload: string): Promise<string> {
  const conn = await d.dial(DEST, Buffer.from(payload));
  try {
    const [chunk] = (await once(conn.socket, 'data')) as [Buffer];
    const out = conn.decode ? conn.decode(chunk) : chunk;
    return Buffer.concat(Array.isArray(out) ? out : out ? [out] : []).toString();
  } finally {
    conn.socket.destroy();
  }
}

test('null-routed endpoint: the client recovers on the next endpoint within 5 s and leaves the blocked 3-tuple alone for its residual', async () => {
  const clock = new OffsetClock();
  const aCalls = { n: 0 };
  const bCalls = { n: 0 };
  const A: Endpoint = { host: '203.0.113.1', port: 8388 };
  const B: Endpoint = { host: '203.0.113.1', port: 443 };
  const failures: string[] = [];
  const d = new FailoverDialer({
    endpoints: [A, B],
    dialerFor: (e) => (e === A ? blackhole(aCalls) : toPort(echoPort, bCalls)),
    clock,
    attemptTimeoutMs: 300,
    onEndpointFailure: (e, k) => failures.push(`${e.port}:${k}`),
  });
  const t0 = Date.now();
  assert.equal(await roundTrip(d, 'hello'), 'hello');
  assert.ok(Date.now() - t0 < 5000, `recovered in ${Date.now() - t0} ms`);
  assert.deepEqual(failures, ['8388:connect-failed']);
  // During the residual period the blocked 3-tuple is never dialled again.
  for (let i = 0; i < 10; i++) assert.equal(await roundTrip(d, `x${i}`), `x${i}`);
  assert.equal(aCalls.n, 1);
  assert.equal(bCalls.n, 11);
  clock.offset += 179_000;
  await roundTrip(d, 'still-b');
  assert.equal(aCalls.n, 1);
  // After 180 s the preferred endpoint is tried again (and, still black-holed, skipped again).
  clock.offset += 1_000;
  assert.equal(await roundTrip(d, 'back'), 'back');
  assert.equal(aCalls.n, 2);
});

test('stall after the first packet marks the endpoint; the next connection goes elsewhere', async () => {
  const clock = new OffsetClock();
  const C: Endpoint = { host: '198.51.100.1', port: 8388 };
  const D: Endpoint = { host: '198.51.100.2', port: 8388 };
  const cCalls = { n: 0 };
  const dCalls = { n: 0 };
  const failures: string[] = [];
  const d = new FailoverDialer({
    endpoints: [C, D],
    dialerFor: (e) => (e === C ? toPort(sinkPort, cCalls) : toPort(echoPort, dCalls)),
    clock,
    stallMs: 200,
    onEndpointFailure: (e, k) => failures.push(`${e.host}:${k}`),
  });
  const conn = await d.dial(DEST, Buffer.from('first'));
  await new Promise((r) => setTimeout(r, 400));
  conn.socket.destroy();
  assert.deepEqual(failures, ['198.51.100.1:stall']);
  assert.equal(await roundTrip(d, 'next'), 'next');
  assert.equal(cCalls.n, 1);
  assert.equal(dCalls.n, 1);
  // A connection that gets its reply in time is not marked.
  assert.equal(await roundTrip(d, 'again'), 'again');
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(failures, ['198.51.100.1:stall']);
});

test('all endpoints blocked: a clear error saying when to retry; outer abort propagates', async () => {
  const clock = new OffsetClock();
  const calls = { n: 0 };
  const E: Endpoint = { host: '192.0.2.1', port: 1 };
  const d = new FailoverDialer({
    endpoints: [E],
    dialerFor: () => blackhole(calls),
    clock,
    attemptTimeoutMs: 50,
  });
  await assert.rejects(d.dial(DEST, Buffer.from('x')), (e) => e instanceof UpstreamDialError);
  await assert.rejects(d.dial(DEST, Buffer.from('x')), /every server endpoint is avoided.*180 s/);
  assert.equal(calls.n, 1);
  const ctl = new AbortController();
  const d2 = new FailoverDialer({
    endpoints: [E],
    dialerFor: () => blackhole(calls),
    clock,
    attemptTimeoutMs: 0,
  });
  const p = d2.dial(DEST, undefined, ctl.signal);
  ctl.abort();
  await assert.rejects(p, /aborted/);
  // An outer abort is the caller's choice, not the endpoint's fault.
  assert.equal(d2.selector.isAvoided(E), false);
});

test('all endpoints failed over 30 s ago (a local outage, say): one dial tries the soonest, and success clears it', async () => {
  const clock = new OffsetClock();
  const calls = { n: 0 };
  let up = false;
  const A: Endpoint = { host: '192.0.2.1', port: 1 };
  const B: Endpoint = { host: '192.0.2.2', port: 2 };
  const flaky = (): Dialer => ({
    dial: (d, f, signal) =>
      up ? toPort(echoPort, calls).dial(d, f, signal) : blackhole(calls).dial(d, f, signal),
  });
  const d = new FailoverDialer({ endpoints: [A, B], dialerFor: flaky, clock, attemptTimeoutMs: 50 });
  await assert.rejects(d.dial(DEST, Buffer.from('x')));
  assert.equal(calls.n, 2);
  // Right after the failures: refused without touching either 3-tuple.
  await assert.rejects(d.dial(DEST, Buffer.from('x')), /every server endpoint is avoided/);
  assert.equal(calls.n, 2);
  // 31 s later the network is back: one dial goes to A (its residual ends first) and succeeds.
  clock.offset += 31_000;
  up = true;
  assert.equal(await roundTrip(d, 'back'), 'back');
  assert.equal(calls.n, 3);
  assert.equal(d.selector.isAvoided(A), false);
  assert.equal(d.selector.isAvoided(B), true);
});
