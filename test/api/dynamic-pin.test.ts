// Issue 13: a dynamic key pointing at the API's own (self-signed) certificate carries
// ?certSha256=<pin>, so `ladder client` can fetch it as printed; one behind a proxy with a real
// certificate (dynamicKeyBaseUrl) carries none. The server answers the URL with the parameter as
// Outline's apps send it (they fetch ssconf:// as https:// with the query), and our client reads
// the pin back and does not send it. The printed key through the real client is in
// test/e2e/first-hour.test.ts (step 3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dynamicAccessUrl } from '../../src/api/index.js';
import type { KeyRecord } from '../../src/store/index.js';
import { parseDynamicKeyUrl } from '../../src/client/dynamic-fetch.js';
import { harness, tempDir } from './helpers.js';

const PIN = 'AB'.repeat(32);
const key = { accessToken: 'tok_en-123' } as KeyRecord;

test('dynamicAccessUrl: pinned on the API itself, unpinned behind a dynamicKeyBaseUrl, round-trips through the client parser', () => {
  const self = { dynamicKeyBaseUrl: null, hostnameForAccessKeys: '203.0.113.5', apiPort: 8443 };
  const url = dynamicAccessUrl(key, self, 'home', PIN)!;
  assert.equal(url, `ssconf://203.0.113.5:8443/access/tok_en-123?certSha256=${PIN}#home`);
  const parsed = parseDynamicKeyUrl(url);
  assert.equal(parsed.pinSha256, PIN.toLowerCase());
  assert.equal(parsed.url.href, 'https://203.0.113.5:8443/access/tok_en-123', 'the pin is not sent');
  assert.equal(parsed.tag, 'home');
  assert.equal(
    dynamicAccessUrl(key, self, undefined, undefined),
    'ssconf://203.0.113.5:8443/access/tok_en-123',
    'no certificate known: no pin',
  );
  const proxied = { ...self, dynamicKeyBaseUrl: 'https://keys.example.org' };
  assert.equal(
    dynamicAccessUrl(key, proxied, undefined, PIN),
    'ssconf://keys.example.org/access/tok_en-123',
    'a real certificate needs no pin',
  );
});

test('the server answers /access/TOKEN?certSha256=… as Outline apps fetch it (the parameter is ignored)', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  await h.store.updateSettings({ apiPort: 8443 });
  const k = JSON.parse((await h.call('POST', '/access-keys', {})).body) as { dynamicAccessUrl: string };
  const token = /\/access\/([A-Za-z0-9_-]+)/.exec(k.dynamicAccessUrl)![1]!;
  const plain = await h.app.inject({ method: 'GET', url: `/access/${token}` });
  const pinned = await h.app.inject({ method: 'GET', url: `/access/${token}?certSha256=${PIN}` });
  assert.equal(plain.statusCode, 200);
  assert.equal(pinned.statusCode, 200, pinned.body);
  const shape = (b: string): string[] => Object.keys(JSON.parse(b) as object).sort();
  assert.deepEqual(shape(pinned.body), shape(plain.body));
});
