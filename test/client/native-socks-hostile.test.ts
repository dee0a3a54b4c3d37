/**
 * The client's native SOCKS5 front (native/socks5_front.cc) against hostile or unlucky callers:
 * a worker that exits with connections in their handshake or an application connection (the addon
 * must stay loaded for their close callbacks; the watches end before the thread's epoll set), and a
 * greeting and request trickled in one byte per segment.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startClient } from '../../src/client/index.js';
import { nativeSocksFront } from '../../src/transport/native-sockets.js';
import { fdOf } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { cleanEnv } from '../helpers/clean-env.js';

const fns = nativeSocksFront();
const skip = skipUnless(fns !== undefined, 'the native addon with socks5Front (Linux; npm run build:native)');
const ADDON = fileURLToPath(new URL('../../build/Release/ladder_aead.node', import.meta.url));

/**
 * A process whose only user of the addon is a worker: the worker starts a front, a client of the
 * main thread leaves a connection in its handshake, the worker exits. Node unloads the addon with
 * the worker's env, and the front's handles are closed at that env's cleanup.
 */
const WORKER_EXIT = `
import { Worker } from 'node:worker_threads';
import net from 'node:net';
const src = \`
const { parentPort } = require('node:worker_threads');
const net = require('node:net');
const a = require(process.env.LADDER_TEST_ADDON);
const srv = net.createServer();
srv.listen(0, '127.0.0.1', () => {
  const port = srv.address().port;
  a.socks5Front(srv._handle.fd, 50, 10000, (fd) => a.fdClose(fd));
  srv.close();
  parentPort.postMessage(port);
  parentPort.on('message', () => setTimeout(() => process.exit(0), 100));
});
\`;
const w = new Worker(src, { eval: true, execArgv: [] });
w.once('message', (port) => {
  const c = net.connect(port, '127.0.0.1', () => {
    c.write(Buffer.from([5])); // half a greeting: in the front's handshake
    setTimeout(() => w.postMessage('exit'), 200);
  });
  c.on('error', () => {});
  w.once('exit', () => setTimeout(() => { console.log('alive'); c.destroy(); process.exit(0); }, 300));
});
`;

/**
 * The same with both kinds of watch in the worker's one epoll set (native/thread_poll.cc): a
 * NativeAppSocket's connection (appConn) that echoes, and a connection in its handshake. The
 * worker reports how many watches were live when it was told to exit.
 */
const WORKER_EXIT_APP = `
import { Worker } from 'node:worker_threads';
import net from 'node:net';
const src = \`
const { parentPort } = require('node:worker_threads');
const net = require('node:net');
const a = require(process.env.LADDER_TEST_ADDON);
a.appConnInit((id, chunk) => { if (chunk) a.appConnWrite(id, chunk); });
const srv = net.createServer();
srv.listen(0, '127.0.0.1', () => {
  const port = srv.address().port;
  a.socks5Front(srv._handle.fd, 50, 10000, (fd, kind, addr, data) => {
    const id = a.appConnOpen(fd);
    a.appConnRead(id, true);
    if (data) a.appConnWrite(id, data);
  });
  srv.close();
  parentPort.postMessage(port);
  parentPort.on('message', () => {
    parentPort.postMessage('live ' + a.appConnLive() + ' ' + a.pollLive()[1]);
    setTimeout(() => process.exit(0), 100);
  });
});
\`;
const w = new Worker(src, { eval: true, execArgv: [] });
w.on('message', (m) => {
  if (typeof m === 'string') return console.log(m);
  const c = net.connect(m, '127.0.0.1', () => c.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80, 104, 105])));
  let got = Buffer.alloc(0);
  c.on('data', (d) => {
    got = Buffer.concat([got, d]);
    if (!got.subarray(12).equals(Buffer.from('hi'))) return;
    console.log('echoed');
    const c2 = net.connect(m, '127.0.0.1', () => {
      c2.write(Buffer.from([5]));
      setTimeout(() => w.postMessage('exit'), 200);
    });
    c2.on('error', () => {});
  });
  c.on('error', () => {});
  w.once('exit', () => setTimeout(() => { console.log('alive'); c.destroy(); process.exit(0); }, 300));
});
`;

/** Runs `script` in a fresh process with the addon; its stdout once it exited cleanly. */
function survives(script: string): string {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: cleanEnv({ LADDER_TEST_ADDON: ADDON }),
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

describe('native SOCKS5 front: hostile and unlucky callers', { skip, timeout: 60_000 }, () => {
  it('a worker that exits with a connection in its handshake does not take the process down', () => {
    assert.ok(existsSync(ADDON));
    assert.equal(survives(WORKER_EXIT), 'alive');
  });

  it("a worker that exits with a NativeAppSocket and a handshake in the thread's epoll set does not take the process down", () => {
    // Control: both watches were live in the worker's set when it exited.
    assert.deepEqual(survives(WORKER_EXIT_APP).split('\n'), ['echoed', 'live 1 2', 'alive']);
  });

  it('a greeting and a CONNECT to a 255-byte name sent one byte per segment: the same answer as in one', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const fd = fdOf(srv);
    const got: Array<{ kind: number; addr?: Buffer | undefined; data?: Buffer | undefined }> = [];
    const front: object = fns!.socks5Front(fd, 2000, 20_000, (cfd, kind, addr, data) => {
      got.push({ kind, addr, data });
      fns!.fdClose(cfd);
    });
    srv.close();
    try {
      const name = Buffer.alloc(255, 'a');
      const addr = Buffer.concat([Buffer.from([3, 255]), name, Buffer.from([1, 187])]);
      const hello = Buffer.concat([Buffer.from([5, 2, 2, 0]), Buffer.from([5, 1, 0]), addr]);
      const c = net.connect({ port, host: '127.0.0.1', noDelay: true });
      c.on('error', () => {});
      const answers: Buffer[] = [];
      c.on('data', (b: Buffer) => answers.push(b));
      await new Promise((r) => c.once('connect', r));
      for (const byte of hello) {
        c.write(Buffer.from([byte]));
        await sleep(1);
      }
      c.write('hi'); // the first data: one read, as the JS wait takes it
      await waitFor(() => got.length === 1, { timeoutMs: 10_000 });
      assert.equal(got[0]!.kind, 2);
      assert.deepEqual(got[0]!.addr, addr);
      assert.equal(got[0]!.data?.toString(), 'hi');
      await waitFor(() => Buffer.concat(answers).length >= 12, { timeoutMs: 5000 });
      assert.deepEqual(Buffer.concat(answers), Buffer.from([5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
      c.destroy();
      assert.equal(fns!.socks5FrontLive(front), 0);
    } finally {
      fns!.socks5FrontClose(front);
    }
  });

  it('a descriptor that is not a listening socket is refused (it would keep the loop spinning on EINVAL)', async () => {
    const srv = net.createServer((s) => s.on('error', () => {}).write('readable'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const c = net.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1' });
    c.on('error', () => {});
    await new Promise((r) => c.once('connect', r));
    try {
      const fd = fdOf(c);
      assert.throws(() => fns!.socks5Front(fd, 50, 1000, () => {}), /not a listening socket/);
    } finally {
      c.destroy();
      srv.close();
    }
  });
});

/**
 * An application that hangs up in the middle of its SOCKS5 handshake: the client closes the
 * connection at once and frees the descriptor (the inbound's sockets allow half-open, which kept
 * such a connection until the 10 s handshake timeout: under a low descriptor limit, a burst of
 * abandoned connections then starved the listener). The JS inbound is the same code behind both.
 */
describe('SOCKS5 handshake abandoned by the application', { timeout: 60_000 }, () => {
  const fdCount = (): number => readdirSync('/proc/self/fd').length;
  const cases: Array<[string, Buffer]> = [
    ['before any byte', Buffer.alloc(0)],
    ['in the greeting', Buffer.from([5, 2])],
    ['after the greeting', Buffer.from([5, 1, 0])],
    ['in the request', Buffer.from([5, 1, 0, 5, 1, 0, 1, 127])],
  ];
  for (const native of fns ? [true, false] : [false]) {
    for (const [when, bytes] of cases) {
      it(`${native ? 'native front' : 'JS inbound'}: hung up ${when}: closed within a second`, async () => {
        const key = `ss://${Buffer.from('aes-256-gcm:abandoned').toString('base64url')}@127.0.0.1:9`;
        const client = await startClient({ key, socks: '127.0.0.1:0', nativeSocks: native });
        try {
          const before = fdCount();
          const c = net.connect({ port: client.socksAddress!.port, host: '127.0.0.1', allowHalfOpen: true });
          c.on('error', () => {});
          c.resume();
          await new Promise((r) => c.once('connect', r));
          if (bytes.length > 0) c.write(bytes);
          await sleep(50);
          const t0 = Date.now();
          const closed = new Promise((r) => c.once('end', r));
          c.end();
          await Promise.race([closed, sleep(3000)]);
          assert.ok(
            Date.now() - t0 < 1000,
            `the client answered the FIN with its own (${Date.now() - t0} ms)`,
          );
          c.destroy();
          await waitFor(() => fdCount() <= before, { timeoutMs: 1000 });
        } finally {
          await client.close();
        }
      });
    }
  }
});
