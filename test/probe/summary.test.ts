/** The terminal summary: what the head line says about unknown verdicts, and which URLs it names. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Verdict } from '../../src/probe/classify.js';
import type { ProbeResult } from '../../src/probe/run.js';
import { summarize } from '../../src/probe/summary.js';

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
function measured(input: string, blocking: Verdict, control = true): ProbeResult {
  return {
    input,
    category: 'NEWS',
    startTime: new Date(0),
    runtime: 1,
    keys: {
      queries: [],
      tcp_connect: [],
      tls_handshakes: [],
      requests: [],
      control: control ? CONTROL : {},
      control_failure: blocking === null ? 'generic_timeout_error' : null,
      dns_experiment_failure: null,
      http_experiment_failure: null,
      x_null_routed: false,
      dns_consistency: null,
      body_proportion: null,
      body_length_match: null,
      status_code_match: null,
      headers_match: null,
      title_match: null,
      blocking,
      accessible: blocking === null ? null : blocking === false,
      x_unexpected_answers: [],
    },
  };
}

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
});
