import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseShadowTlsPluginOptions } from './shadowtls-opts.js';

test('shadow-tls plugin options: host, password, version=3 (mihomo / Shadowrocket form)', () => {
  const o = parseShadowTlsPluginOptions('host=www.example.com;password=s3cr\\;et;version=3');
  assert.equal(o.sni, 'www.example.com');
  assert.equal(o.password, 's3cr;et');
  assert.deepEqual(o.notes, []);
});

test('fp / client-fingerprint and unknown options are notes, not errors', () => {
  const o = parseShadowTlsPluginOptions('host=a.test;password=p;version=3;fp=chrome;what=1');
  assert.equal(o.notes.length, 2);
  assert.match(o.notes[0]!, /"fp" is ignored/);
  assert.match(o.notes[1]!, /"what" is unknown/);
});

test('bad fields: one line naming the field, never the password', () => {
  const cases: [string, RegExp][] = [
    ['host=a.test;password=pw1234', /without version=: only ShadowTLS v3/],
    ['host=a.test;password=pw1234;version=2', /version=2 is not supported \(only version=3\)/],
    ['password=pw1234;version=3', /without host=/],
    ['host=a b;password=pw1234;version=3', /host="a b" is not a DNS name/],
    ['host=a.test;version=3', /without password=/],
    ['host=a.test;password;version=3', /without password=/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseShadowTlsPluginOptions(text),
      (err: Error) => re.test(err.message) && !err.message.includes('pw1234') && !err.message.includes('\n'),
      text,
    );
  }
});
