import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateWebSettings } from './setup.js';

test('validateWebSettings names the offending flag', () => {
  const ok = { port: 8443, secretPath: '/abc-DEF_1' };
  validateWebSettings(ok);
  for (const [bad, msg] of [
    [{ ...ok, secretPath: 'abc' }, /--web-path/],
    [{ ...ok, secretPath: '/abc/' }, /--web-path/],
    [{ ...ok, secretPath: '/a b' }, /--web-path/],
    [{ ...ok, port: 70000 }, /--web-port/],
    [{ ...ok, trustProxy: ['10.0.0.0/40'] }, /--trust-proxy: bad entry "10\.0\.0\.0\/40"/],
    [{ ...ok, tlsCertFile: 'c.pem' }, /--tls-cert and --tls-key go together/],
    [{ ...ok, tlsCertFile: 'c', tlsKeyFile: 'k', acmeDomains: ['a.example'], dataDir: '/d' }, /exclusive/],
    [{ ...ok, acmeDomains: ['a.example'] }, /data directory/],
  ] as const) {
    assert.throws(() => validateWebSettings(bad), msg);
  }
});
