import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus, type ClientStatus } from './status.js';

const status = (updatedAt: number, avoidedForMs: number): ClientStatus => ({
  pid: 42,
  startedAt: updatedAt - 600_000,
  updatedAt,
  network: 'net',
  key: { kind: 'static' },
  endpoints: [
    {
      position: 1,
      kind: 'shadowsocks',
      port: 8388,
      state: 'avoided',
      avoidedForMs,
      failures: 2,
      lastFail: 'reset',
    },
  ],
});

test('--status counts an avoidance from now, not from when the file was written', () => {
  const now = 1_000_000_000;
  const line = (s: ClientStatus): string => formatStatus(s, true, now).split('\n').at(-1)!;
  // Control: written just now, the whole period is left.
  assert.equal(
    line(status(now, 180_000)),
    '  1. shadowsocks port 8388: avoided 180 s more after 2 failures in a row (reset)',
  );
  // Written 25 s ago (the file is rewritten every 30 s): 155 s left, not 180.
  assert.equal(
    line(status(now - 25_000, 180_000)),
    '  1. shadowsocks port 8388: avoided 155 s more after 2 failures in a row (reset)',
  );
  // The period ran out since: no negative countdown.
  assert.equal(
    line(status(now - 25_000, 10_000)),
    '  1. shadowsocks port 8388: avoided until 15 s ago after 2 failures in a row (reset), may be tried again',
  );
});

test('--status: an endpoint that carried data and then failed is not "none yet"', () => {
  const now = 1_000_000_000;
  const st = status(now, 180_000);
  const using = (s: ClientStatus): string => formatStatus(s, true, now).split('\n')[2]!;
  // Control: nothing ever carried data.
  assert.equal(using(st), '  using: none yet (no connection has carried data)');
  st.endpoints[0]!.lastOkAt = now - 8_000;
  assert.equal(
    using(st),
    '  using: none now (endpoint 1 (shadowsocks, port 8388) last carried data 8 s ago, then avoided)',
  );
});
