import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ManualClock } from '../shared/clock.js';
import { createLogger } from '../shared/logger.js';
import type { ConnectionClosedEvent, ConnectionStatus } from './events.js';
import { RefusalLog } from './refusal-log.js';

function setup(level = 'info') {
  const sink = new PassThrough();
  let text = '';
  sink.on('data', (d: Buffer) => (text += d.toString()));
  const clock = new ManualClock();
  const log = new RefusalLog({ log: createLogger({ level, destination: sink }), clock });
  const msgs = (): string[] =>
    text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => String((JSON.parse(l) as { msg: string }).msg));
  return { clock, log, msgs };
}

function ev(status: ConnectionStatus, keyId?: string, extra: Partial<ConnectionClosedEvent> = {}) {
  return {
    status,
    keyId,
    probe: keyId === undefined,
    timeToAuthMs: undefined,
    durationMs: 10,
    bytesUp: 100,
    bytesDown: 0,
    ...extra,
  } satisfies ConnectionClosedEvent;
}

test('ordinary closes are not refusals', () => {
  const { log, msgs } = setup();
  for (const s of ['OK', 'ERR_CLOSED', 'ERR_RELAY'] as const) {
    log.closed(ev(s, 'k'));
    log.closed(ev(s));
  }
  assert.deepEqual(msgs(), []);
});

test('each reason and key once per 10 s, then a count; dial failures name the errno only', async () => {
  const { clock, log, msgs } = setup();
  log.closed(ev('ERR_FORBIDDEN', 'k1'));
  log.closed(ev('ERR_FORBIDDEN', 'k1'));
  log.closed(ev('ERR_FORBIDDEN', 'k2'));
  log.closed(ev('ERR_CONNECT', 'k1', { errno: 'ECONNREFUSED' }));
  log.closed(ev('ERR_CONNECT', 'k1', { errno: 'ETIMEDOUT' }));
  log.closed(ev('ERR_RESOLVE', 'k1'));
  clock.advance(10_000);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(msgs(), [
    'refused a connection to a private address (loopback/LAN/link-local) for key "k1": start the server with --allow-private to allow it for a local test',
    'refused a connection to a private address (loopback/LAN/link-local) for key "k2": start the server with --allow-private to allow it for a local test',
    'could not reach the destination for key "k1": ECONNREFUSED',
    'could not reach the destination for key "k1": ETIMEDOUT',
    'could not resolve the destination name for key "k1"',
    'refused a connection to a private address (loopback/LAN/link-local) for key "k1": start the server with --allow-private to allow it for a local test (1 more in the last 10 s)',
  ]);
});

test('unauthenticated connections: one line, then a count with replays and timestamps broken out', async () => {
  const { clock, log, msgs } = setup();
  log.closed(ev('ERR_CIPHER'));
  log.closed(ev('ERR_SHORT_HEADER', undefined, { bytesUp: 0 })); // sent nothing: tried no key
  log.closed(ev('ERR_CIPHER'));
  log.closed(ev('ERR_REPLAY_CLIENT'));
  log.closed(ev('ERR_REPLAY_CLIENT'));
  log.closed(ev('ERR_TIMESTAMP'));
  clock.advance(60_000);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(msgs(), [
    'a connection did not authenticate with any key (wrong, disabled, expired or over-quota key, a key at its device limit, or probes); more are counted and reported at most once per 60 s',
    '4 more connections did not authenticate with any key in the last 60 s (wrong, disabled, expired or over-quota key, a key at its device limit, or probes); of them 2 replayed, 1 dated more than 30 s off (2022 timestamp: a wrong client clock, or a replay)',
  ]);
});

test('nothing at warn level', () => {
  const { log, msgs } = setup('warn');
  log.closed(ev('ERR_FORBIDDEN', 'k1'));
  log.closed(ev('ERR_CIPHER'));
  log.close();
  assert.deepEqual(msgs(), []);
});
