/**
 * The `dir:` decoy against nginx serving the same directory: every request below must get the same
 * bytes (Date values and the listening port masked) and the same close behaviour, whether it is
 * sent to nginx directly or to the web front, and whether or not it carries a WebSocket upgrade
 * on a wrong path. Also: no path traversal, no symlink escape, no directory listing.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dirDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { DECOY_REQUESTS, exchange, makeSite, mask, nginxSkip, startNginx, tempDir, type Nginx } from './fixtures.js';


describe('dir: decoy matches nginx serving the same directory', { skip: nginxSkip() }, () => {
  const tmp = tempDir('decoy-dir');
  let nginx: Nginx;
  let front: WebFront;
  before(async () => {
    const root = join(tmp.path, 'www');
    const outside = join(tmp.path, 'outside');
    mkdirSync(root);
    mkdirSync(outside);
    makeSite(root, outside);
    nginx = await startNginx(`listen 127.0.0.1:{{PORT}}; root ${root};`);
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/0a9f-secret',
      decoy: dirDecoy(root),
      onUpgrade: () => false,
    });
  });
  after(async () => {
    await front?.close();
    await nginx?.stop();
    tmp.remove();
  });

  for (const raw of DECOY_REQUESTS) {
    test(JSON.stringify(raw.slice(0, 60)), async () => {
      const req = raw.split('{{H}}').join('Host: example.org\r\n');
      const [direct, viaFront] = await Promise.all([exchange(nginx.port, req), exchange(front.port, req)]);
      assert.ok(direct.text.length > 0, 'nginx answered');
      assert.equal(mask(viaFront.text, [front.port]), mask(direct.text, [nginx.port]));
      assert.equal(viaFront.close, direct.close);
    });
  }

  test('no traversal: a symlink out of the root is not served', async () => {
    const r = await exchange(front.port, 'GET /escape.txt HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 404 Not Found\r\n/);
    assert.doesNotMatch(r.text, /outside the root/);
  });
});
