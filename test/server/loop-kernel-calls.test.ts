/**
 * Two system calls per short connection the addon no longer makes (docs/benchmarks.md, "the
 * kernel side of a short connection, session 20"):
 *   - libuv's idle-time pre-poll: a thread with the addon's epoll set turns libuv's idle-time
 *     measure off (LADDER_SKIP_IDLE_POLL=0 leaves it on), so the loop no longer polls once with
 *     timeout 0 before each sleep; what observes it is performance.eventLoopUtilization(), whose
 *     idle time then stops growing, and keepLoopIdleTime() (the server's loop statistics) turns it
 *     back on;
 *   - the relay's last FIN goes with close(2) instead of shutdown(SHUT_WR) + close
 *     (LADDER_LAST_FIN_BY_CLOSE=0: as before): the peer still reads a clean FIN after the bytes,
 *     and strace counts one shutdown less.
 * Each case runs in a child process (the switches are read once per process).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { REPO_ROOT, which } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';

const fns = nativeRelay() as unknown as { loopIdleTime?: unknown } | null;
const ADDON = join(REPO_ROOT, 'build', 'Release', 'ladder_aead.node');

/** Runs `body` (CommonJS; `a` is the addon) in a child node with `env`; its stdout as JSON. */
function child(body: string, env: Record<string, string>, strace?: string): unknown {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-kcalls-'));
  try {
    const script = join(dir, 'child.cjs');
    writeFileSync(script, `const a = require(${JSON.stringify(ADDON)});\n${body}`);
    const cmd = strace ? 'strace' : process.execPath;
    const args = strace
      ? ['-f', '-qq', '-e', `trace=${strace}`, '-o', join(dir, 'trace'), process.execPath, script]
      : [script];
    const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, `child failed: ${r.stderr}`);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    if (strace) out.traced = readFileSync(join(dir, 'trace'), 'utf8');
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Idle time over 150 ms of sleep (ms), before and after the addon's set is made on the thread
// (a tcpConnect's watch), then after keepLoopIdleTime's call.
const IDLE = `
const { performance } = require('node:perf_hooks');
const net = require('node:net');
const idleOver = (ms) => new Promise((res) => {
  const e = performance.eventLoopUtilization();
  setTimeout(() => res(performance.eventLoopUtilization(e).idle), ms);
});
(async () => {
  const before = await idleOver(150);
  const srv = net.createServer((s) => s.destroy()).listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const fd = await new Promise((res, rej) =>
    a.tcpConnect('127.0.0.1', srv.address().port, (fd, e) => (fd >= 0 ? res(fd) : rej(new Error('errno ' + e)))));
  require('node:fs').closeSync(fd);
  srv.close();
  const measuring = a.loopIdleTime();
  const withSet = await idleOver(150);
  a.loopIdleTime(true);
  const kept = await idleOver(150);
  process.stdout.write(JSON.stringify({ before, measuring, withSet, kept }));
})();
`;

describe(
  "libuv's idle-time pre-poll on a thread with the addon's set",
  { skip: skipUnless(typeof fns?.loopIdleTime === 'function', 'the native addon with loopIdleTime (Linux)') },
  () => {
    it('is turned off with the set, and back on by keepLoopIdleTime', () => {
      const r = child(IDLE, {}) as { before: number; measuring: boolean; withSet: number; kept: number };
      assert.ok(r.before > 100, `idle time measured before the set (${r.before} ms)`);
      assert.equal(r.measuring, false);
      assert.ok(r.withSet < 20, `no idle time measured once the set is made (${r.withSet} ms)`);
      assert.ok(r.kept > 100, `measured again after loopIdleTime(true) (${r.kept} ms)`);
    });

    it('stays on with LADDER_SKIP_IDLE_POLL=0', () => {
      const r = child(IDLE, { LADDER_SKIP_IDLE_POLL: '0' }) as { measuring: boolean; withSet: number };
      assert.equal(r.measuring, true);
      assert.ok(r.withSet > 100, `idle time measured with the set (${r.withSet} ms)`);
    });
  },
);

// One owned relay (both descriptors from tcpConnect) between a front the child holds and a
// destination that answers each read and ends after the front's FIN: the front writes, ends,
// and must read the answer and a clean end (a FIN, not a reset).
const FIN = `
const net = require('node:net');
const dest = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('data', (d) => s.write(d));
  s.on('end', () => s.end());
});
const front = net.createServer({ allowHalfOpen: true });
const listen = (srv) => new Promise((r) => srv.listen(0, '127.0.0.1', r));
const dial = (port) => new Promise((res, rej) =>
  a.tcpConnect('127.0.0.1', port, (fd, e) => (fd >= 0 ? res(fd) : rej(new Error('errno ' + e)))));
(async () => {
  await listen(dest);
  await listen(front);
  const accepted = new Promise((r) => front.once('connection', r));
  const fa = await dial(front.address().port);
  const s = await accepted;
  const fb = await dial(dest.address().port);
  let reason = -1;
  a.relayPair(fa, fb, null, null, [undefined, undefined, undefined], 5000, (r) => { reason = r; }, 3);
  let got = '';
  let err = '';
  s.on('data', (d) => { got += d; });
  s.on('error', (e) => { err = e.code; });
  const ended = new Promise((r) => s.once('end', r));
  s.end('hello');
  await Promise.race([ended, new Promise((r) => setTimeout(r, 5000))]);
  await new Promise((r) => setTimeout(r, 50));
  s.destroy(); dest.close(); front.close();
  process.stdout.write(JSON.stringify({ got, err, reason, ended: s.readableEnded }));
})();
`;

describe(
  "the relay's last FIN",
  {
    skip: skipUnless(
      typeof fns?.loopIdleTime === 'function' && !!which('strace'),
      'the native addon and strace',
    ),
  },
  () => {
    const shutdowns = (t: string): number => t.split('\n').filter((l) => /\bshutdown\(/.test(l)).length;

    it('goes with the close: the peer reads the bytes and a clean end, one shutdown less', () => {
      const on = child(FIN, {}, 'shutdown') as {
        got: string;
        err: string;
        reason: number;
        ended: boolean;
        traced: string;
      };
      const off = child(FIN, { LADDER_LAST_FIN_BY_CLOSE: '0' }, 'shutdown') as typeof on;
      for (const r of [on, off]) {
        assert.equal(r.got, 'hello');
        assert.equal(r.err, '', 'no reset');
        assert.equal(r.ended, true, 'the front read a FIN');
        assert.equal(r.reason, 0, 'the relay ended done');
      }
      // The child's own sockets shut down twice (the front's end, the destination's); the relay
      // once (the destination's write half, the half-close) against twice before.
      assert.equal(shutdowns(on.traced), 3, on.traced);
      assert.equal(shutdowns(off.traced), 4, off.traced);
    });
  },
);
