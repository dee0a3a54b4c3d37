import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureCertificate } from '../../src/api/tls.js';
import { DynamicKeyFetchError, fetchDynamicKey, parseDynamicKeyUrl } from '../../src/client/dynamic-fetch.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { which } from '../helpers/peers.js';

const BODY = '{"server":"127.0.0.1","server_port":8388,"method":"aes-256-gcm","password":"pw-for-fetch"}';

test('dynamic key fetch: pinned self-signed server, pin checked before the request, bounds on size, redirects and time', async (t) => {
  if (!requireOrSkip(t, which('openssl') !== undefined, 'openssl (makes the test certificate)')) return;
  const dir = mkdtempSync(join(tmpdir(), 'ladder-fetch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await ensureCertificate(dir, '127.0.0.1');
  const seen: string[] = [];
  const srv = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/access/TOKEN') res.end(BODY);
    else if (req.url === '/big') res.end('x'.repeat(100_000));
    else if (req.url === '/moved') res.writeHead(302, { location: '/access/TOKEN' }).end();
    else if (req.url === '/loop') res.writeHead(302, { location: '/loop' }).end();
    else if (req.url === '/plain') res.writeHead(302, { location: 'http://127.0.0.1/x' }).end();
    else if (req.url === '/hang') return;
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    srv.closeAllConnections();
    srv.close();
  });
  const port = (srv.address() as AddressInfo).port;
  const key = (path: string, pin = cert.sha256): ReturnType<typeof parseDynamicKeyUrl> =>
    parseDynamicKeyUrl(`ssconf://127.0.0.1:${port}${path}?certSha256=${pin}`);
  const failure = async (p: Promise<unknown>): Promise<DynamicKeyFetchError> => {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof DynamicKeyFetchError, String(err));
      return err;
    }
    return assert.fail('expected a failure');
  };

  assert.equal(await fetchDynamicKey(key('/access/TOKEN')), BODY);
  assert.deepEqual(seen, ['/access/TOKEN'], 'the pin parameter is not sent');

  // A wrong pin: refused, and the request (whose path is the secret) never reaches the server.
  const wrong = await failure(fetchDynamicKey(key('/access/TOKEN', 'ab'.repeat(32))));
  assert.match(wrong.message, /does not match the key's certSha256 pin/);
  assert.equal(wrong.permanent, true);
  // No pin: normal verification refuses the self-signed certificate, saying how to pin.
  const unpinned = await failure(
    fetchDynamicKey(parseDynamicKeyUrl(`https://127.0.0.1:${port}/access/TOKEN`)),
  );
  assert.match(unpinned.message, /not trusted .*certSha256/);
  assert.deepEqual(seen, ['/access/TOKEN'], 'neither refused attempt sent a request');

  assert.match((await failure(fetchDynamicKey(key('/big')))).message, /larger than 65536 bytes/);
  assert.equal(await fetchDynamicKey(key('/moved')), BODY, 'a same-host redirect keeps the pin');
  assert.match((await failure(fetchDynamicKey(key('/loop')))).message, /redirected too many times/);
  assert.match((await failure(fetchDynamicKey(key('/plain')))).message, /non-https/);
  const nf = await failure(fetchDynamicKey(key('/gone')));
  assert.match(nf.message, /HTTP 404 \(no such key/);
  assert.equal(nf.permanent, true);
  const slow = await failure(fetchDynamicKey(key('/hang'), { timeoutMs: 500 }));
  assert.match(slow.message, /did not answer in time/);
  assert.equal(slow.permanent, false);
  for (const e of [wrong, unpinned, nf, slow]) assert.doesNotMatch(e.message, /TOKEN|127\.0\.0\.1/);
});
