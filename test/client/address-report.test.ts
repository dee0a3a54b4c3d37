/**
 * What `ladder client` reports (address-report.ts ReportTracker): an address that failed is
 * reported when an endpoint on another address then works; not when nothing else worked, not the
 * working address itself, not a failure older than FAILURE_FRESH_MS, and once per REPORT_AGAIN_MS.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  endpointAddress,
  FAILURE_FRESH_MS,
  REPORT_AGAIN_MS,
  ReportTracker,
} from '../../src/client/address-report.js';
import type { KeyEndpoint } from '../../src/client/key.js';
import { ManualClock } from '../../src/shared/clock.js';

const ep = (host: string): KeyEndpoint =>
  ({ host, port: 443, method: 'chacha20-ietf-poly1305', password: 'x' }) as unknown as KeyEndpoint;

test('report tracker: failed then another worked; once per period; fresh failures only', () => {
  const clock = new ManualClock();
  const r = new ReportTracker(clock);
  const a = ep('203.0.113.1');
  const b = ep('198.51.100.2');
  // Control: a failure alone, and the same address working again, report nothing.
  r.failed(a);
  assert.deepEqual(r.worked(a), []);
  r.failed(a);
  assert.deepEqual(r.worked(b), ['203.0.113.1']);
  r.failed(a);
  assert.deepEqual(r.worked(b), [], 'once per REPORT_AGAIN_MS');
  clock.advance(REPORT_AGAIN_MS + 1);
  r.failed(a);
  clock.advance(FAILURE_FRESH_MS + 1);
  assert.deepEqual(r.worked(b), [], 'a stale failure is not reported');
  r.failed(a);
  assert.deepEqual(r.worked(b), ['203.0.113.1']);
  assert.equal(
    endpointAddress({ ...b, websocket: { url: 'wss://[2001:db8::1]:8443/p' } } as unknown as KeyEndpoint),
    '2001:db8::1',
  );
});
