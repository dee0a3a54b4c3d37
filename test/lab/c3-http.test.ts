/** C3: HTTP Host / keyword filter on any port, RST to both sides, 90 s penalty box on the 3-tuple. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpGet } from '../../src/lab/client-ops.js';
import { BLOCKED_NAME, OPEN_NAME, type LabWorld } from '../../src/lab/world.js';
import { LAB_KEYWORD } from '../../src/lab/profiles.js';
import { startWorld } from './helpers.js';

const get = (
  w: LabWorld,
  site: 'blocked' | 'open',
  host: string,
  localAddress: string,
  path = '/',
): Promise<string> =>
  httpGet({
    clock: w.clock,
    timeoutMs: 20_000,
    minRealMs: 3_000,
    localAddress,
    connect: w.sites[site].http,
    hostHeader: host,
    path,
  }).then((r) => r.outcome);

const det = { c3: { enabled: true, pTrigger: 1, pResidual: 1 } } as const;

test('C3 Host filter: blocked Host is reset, open Host passes (negative control)', async () => {
  const w = await startWorld('none', det);
  try {
    assert.equal(await get(w, 'open', OPEN_NAME, '127.0.1.31'), 'OK');
    assert.equal(await get(w, 'blocked', BLOCKED_NAME, '127.0.1.32'), 'RST');
    const d = w.log.filter({ behaviour: 'C3', action: 'RST_BOTH' });
    assert.equal(d.length, 1);
    assert.equal(d[0]!.rule, 'http-host');
    assert.equal(d[0]!.features.host, BLOCKED_NAME);
    // The Host filter is not tied to the address: a blocked Host sent to the open site's address is reset too.
    assert.equal(await get(w, 'open', BLOCKED_NAME, '127.0.1.33'), 'RST');
  } finally {
    await w.stop();
  }
});

test('C3 keyword in the %-decoded path is reset; the same path without it passes', async () => {
  const w = await startWorld('none', det);
  try {
    const encoded = '/search?q=' + encodeURIComponent(LAB_KEYWORD).replace(/-/g, '%2D');
    assert.equal(await get(w, 'open', OPEN_NAME, '127.0.1.34', encoded), 'RST');
    const d = w.log.filter({ behaviour: 'C3', action: 'RST_BOTH' });
    assert.equal(d[0]!.rule, 'http-keyword');
    assert.equal(await get(w, 'open', OPEN_NAME, '127.0.1.35', '/search?q=weather'), 'OK');
  } finally {
    await w.stop();
  }
});

test('C3 penalty box: 90 s on (cIP, sIP, sPort) only, then it expires', async () => {
  const w = await startWorld('none', det);
  try {
    assert.equal(await get(w, 'blocked', BLOCKED_NAME, '127.0.1.36'), 'RST');
    // Same 3-tuple, innocent request: refused during the residual.
    assert.equal(await get(w, 'blocked', OPEN_NAME, '127.0.1.36'), 'RST');
    assert.equal(
      w.log.filter({ behaviour: 'residual', rule: 'c3-penalty-box', action: 'REFUSE_NEW' }).length,
      1,
    );
    // Another client, and another port of the same server: unaffected.
    assert.equal(await get(w, 'blocked', OPEN_NAME, '127.0.1.37'), 'OK');
    const https = await httpGet({
      clock: w.clock,
      timeoutMs: 20_000,
      minRealMs: 3_000,
      localAddress: '127.0.1.36',
      connect: w.sites.blocked.https,
      hostHeader: OPEN_NAME,
      tls: { servername: OPEN_NAME, ca: w.certs.ca },
    });
    assert.equal(https.outcome, 'OK');
    await new Promise((r) => w.clock.setTimeout(() => r(undefined), 91_000));
    assert.equal(await get(w, 'blocked', OPEN_NAME, '127.0.1.36'), 'OK');
  } finally {
    await w.stop();
  }
});

test('C3 realistic gate p_trigger = 0.75 is seeded: same seed, same decisions', async () => {
  const outcomes: string[][] = [];
  for (const seed of [5, 5]) {
    const w = await startWorld(
      'none',
      { c3: { enabled: true, pTrigger: 0.75, pResidual: 0.75, residualMs: 1 } },
      seed,
    );
    try {
      const run: string[] = [];
      for (let i = 0; i < 8; i++) run.push(await get(w, 'blocked', BLOCKED_NAME, `127.0.2.${10 + i}`));
      outcomes.push(run);
    } finally {
      await w.stop();
    }
  }
  assert.deepEqual(outcomes[0], outcomes[1]);
  assert.ok(outcomes[0]!.includes('RST'));
});
