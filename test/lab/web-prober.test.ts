/**
 * C7 pointed at a web port (web-prober.ts): Ladder's web front, with its WebSocket endpoints on
 * a secret path, answers every probe byte for byte like a plain web front with the same decoy;
 * the near-miss secret path is answered like any unknown path. Negative controls: an endpoint
 * that answers a malformed upgrade on the secret path itself (the ws library's 400) instead of
 * leaving it to the decoy, and a reference serving another site, are told apart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer } from 'ws';
import { startDataPlane } from '../../src/server/index.js';
import { builtinDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type UpgradeHandler } from '../../src/server/web/front.js';
import { createWebSocketEndpoints } from '../../src/server/web/websocket.js';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { probeWebFront, type WebProbeTarget } from '../../src/lab/web-prober.js';

const SECRET = '/k3QbO1n0tGu3ssabl3';
const HOST = 'site.web.lab';

test('web prober: Ladder web front = plain web server; an endpoint answering bad upgrades itself and another site are told apart', async () => {
  const certs = await makeLabCertificates([`*.web.lab`]);
  const tls = { cert: certs.cert, key: certs.key };
  const common = { port: 0, host: '127.0.0.1', secretPath: SECRET, tls };
  const dp = await startDataPlane({
    port: 0,
    host: '127.0.0.1',
    keys: [{ id: 'k', method: 'chacha20-ietf-poly1305', secret: 'pw' }],
  });
  const endpoints = createWebSocketEndpoints(dp.server, { secretPath: SECRET });
  const naiveWs = new WebSocketServer({ noServer: true });
  const anyPath: UpgradeHandler = (req, socket, head) => {
    naiveWs.handleUpgrade(req, socket, head, (ws) => ws.close());
    return true;
  };
  const fronts = [
    await startWebFront({
      ...common,
      decoy: builtinDecoy({ seed: 's' }),
      onUpgrade: (q, s, h, a) => endpoints.onUpgrade(q, s, h, a),
    }),
    await startWebFront({ ...common, decoy: builtinDecoy({ seed: 's' }), onUpgrade: () => false }),
    await startWebFront({ ...common, decoy: builtinDecoy({ seed: 's' }), onUpgrade: anyPath }),
    await startWebFront({ ...common, decoy: builtinDecoy({ seed: 'another site' }), onUpgrade: () => false }),
  ];
  const at = (i: number): WebProbeTarget => ({
    endpoint: { host: '127.0.0.1', port: fronts[i]!.port },
    tls: { servername: HOST, ca: certs.ca },
  });
  const opts = { host: HOST, secretPath: SECRET };
  try {
    const ladder = await probeWebFront(at(0), at(1), opts);
    assert.equal(ladder.verdict, 'web server', ladder.differences.join('\n'));
    assert.equal(ladder.probes, 14);
    const miss = ladder.results.find((r) => r.name === 'upgrade, near-miss secret path')!;
    assert.match(miss.response, /^HTTP\/1\.1 404 /);
    assert.doesNotMatch(ladder.results.map((r) => r.response).join(''), /node|express|x-powered-by/i);

    const naive = await probeWebFront(at(2), at(1), opts);
    assert.equal(naive.verdict, 'not a plain web server');
    assert.ok(
      naive.differences.some((d) => d.startsWith('upgrade on the secret path, bad key: ') && /400/.test(d)),
      naive.differences.join('\n'),
    );

    const other = await probeWebFront(at(3), at(1), opts);
    assert.equal(other.verdict, 'not a plain web server', 'the byte comparison sees a different site');
    assert.ok(other.differences.some((d) => d.startsWith('GET /: ')));
  } finally {
    endpoints.close();
    naiveWs.close();
    for (const f of fronts) await f.close();
    await dp.close();
  }
});
