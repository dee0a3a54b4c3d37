/** The terminal summary: what the head line says about unknown verdicts, and which URLs it names. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Verdict } from '../../src/probe/classify.js';
import type { ProbeResult } from '../../src/probe/run.js';
import { namedUrls, summarize } from '../../src/probe/summary.js';
import { failureOf } from '../../src/probe/failure.js';
import { probeResult } from './result-fixture.js';

const CONTROL = {
  dns: { addrs: [], failure: 'generic_timeout_error' },
  http_request: {
    status_code: -1,
    body_length: -1,
    title: '',
    headers: {},
    failure: 'generic_timeout_error',
  },
};

/** A measurement with this verdict; `control` false = run without --via (no control keys). */
const measured = (input: string, blocking: Verdict, control = true): ProbeResult =>
  probeResult(
    input,
    blocking,
    { control: control ? CONTROL : {}, control_failure: blocking === null ? 'generic_timeout_error' : null },
    'NEWS',
  );

const head = (rs: ProbeResult[]): string => summarize(rs).split('\n')[0]!;

test('summary: unknown verdicts say whether there was no control or the control failed', () => {
  assert.equal(
    head([measured('http://a.example/', null, false), measured('http://b.example/', null, false)]),
    '0 of 2 blocked (2 unknown: no control to compare with (--via not given))',
  );
  // Control: with a control that failed, that is what it says.
  assert.equal(
    head([measured('http://a.example/', 'dns'), measured('http://b.example/', null)]),
    '1 of 2 blocked: 1 by DNS (1 unknown: the control failed)',
  );
  assert.equal(head([measured('http://a.example/', false)]), '0 of 1 blocked');
  // The control failed for every URL: the --via server is the likely culprit, and the line says so.
  assert.equal(
    head([measured('http://a.example/', null), measured('http://b.example/', null)]),
    '0 of 2 blocked (2 unknown: the control failed for every URL (generic_timeout_error): is the --via key right and its server up? (ladder probe --servers KEY checks it))',
  );
});

test('failure: a tunnel dial error says the errno it wraps (a --via server that refused), not ERR_CONNECT', () => {
  const refused = Object.assign(new Error('connect failed: ECONNREFUSED'), {
    code: 'ERR_CONNECT',
    cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }),
  });
  assert.equal(failureOf(refused), 'connection_refused');
  // Control: an error with an unknown code and no cause keeps its code.
  assert.equal(
    failureOf(Object.assign(new Error('x'), { code: 'ERR_CONNECT' })),
    'unknown_failure: ERR_CONNECT',
  );
});

test('summary: the blocked URLs, then the unknown ones, by name with the verdict, at most 20', () => {
  const rs = [
    measured('http://open.example/', false),
    measured('http://u0.example/', null),
    measured('http://dns.example/', 'dns'),
    ...Array.from({ length: 20 }, (_, i) => measured(`http://u${i + 1}.example/`, null)),
    measured('https://sni.example/', 'tls'),
  ];
  const lines = namedUrls(rs).split('\n');
  assert.deepEqual(lines.slice(0, 5), [
    '',
    'Blocked or unknown:',
    '  dns      http://dns.example/',
    '  tls      https://sni.example/',
    '  unknown  http://u0.example/  (control: generic_timeout_error)',
  ]);
  assert.equal(lines.length, 2 + 20 + 1 + 1, 'header, 20 URLs, "and more", final newline');
  assert.equal(lines.at(-2), '  and 3 more (all of them: --json or --html)');
  assert.ok(!lines.some((l) => l.includes('open.example')), 'accessible URLs are not named');
  // Without --via there is no control failure to name.
  assert.equal(
    namedUrls([measured('http://x.example/', null, false)]).split('\n')[2],
    '  unknown  http://x.example/',
  );
  // Control: nothing blocked or unknown, nothing named.
  assert.equal(namedUrls([measured('http://open.example/', false)]), '');
});
