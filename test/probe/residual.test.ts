/** Residual blocks: connects reset where this run saw a name-based trigger take its mechanism. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attributeResiduals, type ProbeResult } from '../../src/probe/run.js';
import type { Blocking } from '../../src/probe/classify.js';
import { probeResult } from './result-fixture.js';

const r = (input: string, blocking: Blocking | false, ip: string, connect: string | null): ProbeResult =>
  probeResult(input, blocking, {
    tcp_connect: [
      { ip, port: 80, status: { success: connect === null, failure: connect, blocked: null }, t: 0 },
    ],
    dns_consistency: 'consistent',
  });

test('a reset connect after a Host/keyword trigger on the same address:port is that mechanism, marked residual', () => {
  const out = attributeResiduals([
    r('http://a/1', 'http-failure', '192.0.2.1', null),
    r('http://a/2', 'tcp_ip', '192.0.2.1', 'connection_reset'),
    // Negative controls: silence (a null route), another address, no trigger at all.
    r('http://a/3', 'tcp_ip', '192.0.2.1', 'generic_timeout_error'),
    r('http://b/', 'tcp_ip', '192.0.2.2', 'connection_reset'),
    r('http://c/', false, '192.0.2.3', null),
  ]);
  assert.deepEqual(
    out.map((x) => [x.keys.blocking, x.keys.x_residual ?? false]),
    [
      ['http-failure', false],
      ['http-failure', true],
      ['tcp_ip', false],
      ['tcp_ip', false],
      [false, false],
    ],
  );
});
