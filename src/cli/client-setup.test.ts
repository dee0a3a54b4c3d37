import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routingSummary, shapingSummary } from './client-setup.js';
import { parseRuleList } from '../client/routing/rules.js';
import { endpointFromKey } from '../client/key.js';

const USERINFO = 'Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpodW50ZXIy'; // chacha20-ietf-poly1305:hunter2
const web = (opts: string): string =>
  `ss://${USERINFO}@127.0.0.1:443/?plugin=${encodeURIComponent(`v2ray-plugin;mode=websocket;path=/p;host=a.example${opts}`)}`;

test('the banner says a web key goes over WebSocket, with Mux.Cool on by default and how to turn it off', () => {
  const on = endpointFromKey(web(';tls'), 'local');
  assert.equal(
    shapingSummary([on], undefined, '--no-shape'),
    'over WebSocket+TLS with Mux.Cool on (add mux=0 to the key for a WebSocket per connection)',
  );
  const off = endpointFromKey(web(';mux=0'), 'local');
  assert.equal(shapingSummary([off], undefined, '--no-shape'), 'over WebSocket with Mux.Cool off');
  const raw = endpointFromKey(`ss://${USERINFO}@127.0.0.1:8388`, 'local');
  assert.equal(
    shapingSummary([raw, on], undefined, '--no-shape'),
    'first-packet shaping on for 1 of 2 endpoints, 1 of 2 endpoints over WebSocket+TLS with Mux.Cool on (add mux=0 to the key for a WebSocket per connection)',
  );
  // A raw key alone: shaping only, no transport words.
  assert.equal(shapingSummary([raw], undefined, '--no-shape'), 'first-packet shaping on');
});

test('the banner routing line: a rules default wins over --route, and the line says so', () => {
  const list = (text: string) => parseRuleList(text, 'r.txt');
  assert.equal(routingSummary('proxy', undefined, undefined), 'proxy: everything through the tunnel');
  assert.equal(
    routingSummary('proxy', list('domain,a.example,direct\n'), 'r.txt'),
    'proxy: everything through the tunnel unless a rule says otherwise, 1 rule from r.txt',
  );
  // Was "proxy: everything through the tunnel, 1 rule from r.txt (unmatched: direct)": nothing went through the tunnel.
  assert.equal(
    routingSummary('proxy', list('domain,a.example,fragment\nfinal,direct\n'), 'r.txt'),
    "rules: 1 rule from r.txt, unmatched: direct (the rules' default; --route proxy does not apply)",
  );
  assert.match(
    routingSummary('auto', list('final,direct\n'), 'r.txt'),
    /^auto: 0 rules from r\.txt, unmatched: direct/,
  );
});

test('the banner says HTTPUpgrade for a v2ray-http-upgrade key', () => {
  const up = endpointFromKey(web(';tls;v2ray-http-upgrade'), 'local');
  assert.equal(
    shapingSummary([up], undefined, '--no-shape'),
    'over HTTPUpgrade+TLS with Mux.Cool on (add mux=0 to the key for an HTTPUpgrade per connection)',
  );
  const ws = endpointFromKey(web(';tls;mux=0'), 'local');
  assert.equal(
    shapingSummary(
      [ws, endpointFromKey(web(';tls;mux=0;v2ray-http-upgrade'), 'local')],
      undefined,
      '--no-shape',
    ),
    'over WebSocket+TLS (HTTPUpgrade for 1 of them) with Mux.Cool off',
  );
});
