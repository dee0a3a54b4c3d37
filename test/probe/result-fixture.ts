/** A measurement built by hand for tests of what follows the measuring (summary, residuals). */
import type { Verdict } from '../../src/probe/classify.js';
import type { TestKeys } from '../../src/probe/measure.js';
import type { ProbeResult } from '../../src/probe/run.js';

/** A result with this verdict and nothing measured; `keys` replaces any test key. */
export function probeResult(
  input: string,
  blocking: Verdict,
  keys: Partial<TestKeys> = {},
  category = 'MISC',
): ProbeResult {
  return {
    input,
    category,
    startTime: new Date(0),
    runtime: 0,
    keys: {
      queries: [],
      tcp_connect: [],
      tls_handshakes: [],
      requests: [],
      control: {},
      control_failure: null,
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
      ...keys,
    },
  };
}
