/** startWebService with certificate files (openssl-made) and plain, plus the decoy choice. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startWebService } from '../../src/server/web/setup.js';
import { exchange, makeCert, opensslSkip, splitResponse, tempDir } from './fixtures.js';

const tmp = tempDir('setup');
after(() => tmp.remove());

test('--tls-cert/--tls-key: the front serves that certificate', { skip: opensslSkip() }, async () => {
  const c = makeCert(tmp.path, 'files.example');
  const svc = await startWebService(
    { port: 0, host: '127.0.0.1', secretPath: '/s', tlsCertFile: c.certPath, tlsKeyFile: c.keyPath },
    () => false,
  );
  try {
    assert.equal(svc.front.tls, true);
    assert.equal(svc.challengeFront, undefined);
    const r = await exchange(svc.front.port, 'GET /robots.txt HTTP/1.1\r\nHost: files.example\r\n\r\n', {
      tls: { servername: 'files.example', ca: c.cert },
    });
    assert.equal(splitResponse(r.text).status, 200);
  } finally {
    await svc.close();
  }
});

test('plain, with a dir: decoy', async () => {
  const svc = await startWebService({ port: 0, host: '127.0.0.1', secretPath: '/s', decoy: `dir:${tmp.path}` }, () => false);
  try {
    assert.equal(svc.front.tls, false);
    const r = await exchange(svc.front.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(splitResponse(r.text).status, 403, 'a directory without index.html, as nginx answers');
  } finally {
    await svc.close();
  }
});
