/** The HTML report escapes what the list and the sites supplied (a hostile URL cannot run script). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderHtml } from '../../src/probe/html.js';
import { classify } from '../../src/probe/classify.js';
import type { ProbeResult } from '../../src/probe/run.js';
import { probeResult } from './result-fixture.js';

const page = { failure: null, status: 200, bodyLength: 10, title: 't', headers: {} };

function result(input: string, category: string, failure: string): ProbeResult {
  const cmp = classify({
    https: false,
    dns: { addrs: ['192.0.2.1'], failure: null },
    controlDns: { addrs: ['192.0.2.1'], failure: null },
    tcp: [{ ip: '192.0.2.1', success: true }],
    tls: [],
    http: { failure, phase: 'http' },
    control: page,
    nullRouted: false,
  });
  return probeResult(input, cmp.blocking, { ...cmp, http_experiment_failure: failure }, category);
}

test('HTML report: list- and site-supplied text is escaped; the chart and table cover every URL', () => {
  const html = renderHtml(
    [
      result('http://x.example/"><script>alert(1)</script>', 'NEWS', 'connection_reset'),
      result('http://y.example/', '<img src=x onerror=alert(2)>', '<b>evil</b>'),
    ],
    new Date(0),
  );
  assert.equal((html.match(/<script>/g) ?? []).length, 1, "only the report's own script");
  assert.ok(!html.includes('<img'), 'no injected element');
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(html.includes('&lt;b&gt;evil&lt;/b&gt;'));
  assert.equal((html.match(/<tr><td>/g) ?? []).length, 2);
  assert.match(html, /2 of 2 blocked: 2 by HTTP failure/);
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
});
