/** startWebService with certificate files (openssl-made) and plain, plus the decoy choice. */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { startWebService } from '../../src/server/web/setup.js';
import { ManualClock } from '../../src/shared/clock.js';
import { createLogger } from '../../src/shared/logger.js';
import { freePort } from '../helpers/net.js';
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
  const svc = await startWebService(
    { port: 0, host: '127.0.0.1', secretPath: '/s', decoy: `dir:${tmp.path}` },
    () => false,
  );
  try {
    assert.equal(svc.front.tls, false);
    const r = await exchange(svc.front.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(splitResponse(r.text).status, 403, 'a directory without index.html, as nginx answers');
  } finally {
    await svc.close();
  }
});

test('a proxied decoy whose upstream fails: visitors get 502, the operator one warning a minute with the reason', async () => {
  const closed = await freePort(); // nothing listens there: ECONNREFUSED
  const lines: string[] = [];
  const logger = createLogger({
    destination: { write: (l: string) => lines.push(l) > 0 } as NodeJS.WritableStream,
  });
  const clock = new ManualClock();
  const svc = await startWebService(
    { port: 0, host: '127.0.0.1', secretPath: '/s', decoy: `http://127.0.0.1:${closed}`, logger, clock },
    () => false,
  );
  type Line = {
    level: number;
    code?: string;
    msg: string;
    alsoFailedSinceLastWarning?: number;
    codes?: unknown;
  };
  const warnings = (): Line[] => lines.map((l) => JSON.parse(l) as Line).filter((l) => l.level === 40);
  try {
    for (let i = 0; i < 3; i++) {
      const r = await exchange(svc.front.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(splitResponse(r.text).status, 502);
    }
    assert.equal(warnings().length, 1, `one warning for three failures: ${lines.join('')}`);
    assert.equal(warnings()[0]!.code, 'ECONNREFUSED');
    assert.match(warnings()[0]!.msg, /decoy upstream request failed/);
    // The minute ends: the two held back are reported as a count, by error code, with the same words.
    clock.advance(59_000);
    assert.equal(warnings().length, 1, 'nothing more within the minute');
    clock.advance(1_000);
    assert.equal(warnings().length, 2, lines.join(''));
    assert.equal(warnings()[1]!.alsoFailedSinceLastWarning, 2);
    assert.deepEqual(warnings()[1]!.codes, { ECONNREFUSED: 2 });
    assert.match(warnings()[1]!.msg, /decoy upstream request failed/);
    assert.ok(!lines.join('').includes(String(closed)), 'the upstream address is not logged');
  } finally {
    await svc.close();
  }
});

test('a visitor who leaves before the proxied decoy answers is not an upstream failure (no warning)', async () => {
  // An upstream that reads the request and never answers.
  const silent = net.createServer((s) => s.on('error', () => {}).resume());
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const lines: string[] = [];
  const logger = createLogger({
    destination: { write: (l: string) => lines.push(l) > 0 } as NodeJS.WritableStream,
  });
  const svc = await startWebService(
    {
      port: 0,
      host: '127.0.0.1',
      secretPath: '/s',
      decoy: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`,
      logger,
    },
    () => false,
  );
  try {
    const c = net.connect(svc.front.port, '127.0.0.1');
    c.on('error', () => {});
    await new Promise((r) => c.once('connect', r));
    c.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    await new Promise((r) => setTimeout(r, 200));
    c.destroy(); // the visitor leaves
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      lines.filter((l) => (JSON.parse(l) as { level: number }).level === 40),
      [],
      'no warning',
    );
  } finally {
    await svc.close();
    silent.close();
  }
});
