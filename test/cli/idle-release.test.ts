/**
 * Once start-up is over, `ladder client` and `ladder server` give back start-up's garbage at once
 * (native/idle_memory.cc releaseIdleMemory, src/cli/main.ts): one last-resort collection of the
 * main thread's heap, which V8's trace names "low memory notification". Without it
 * (LADDER_IDLE_RELEASE=0, the control) the first memory-reducing collection is V8's memory
 * reducer's, some 8 s after start. And the addon call itself, in a child process: a grown young
 * generation is back at its initial 1 MiB and the old generation's dead objects are gone.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeAddon } from '../../src/protocol/shadowsocks/native.js';
import { freePort, waitListening } from '../helpers/net.js';
import { LADDER_BIN, ladderServerArgv, REPO_ROOT, ssUrl } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep } from '../helpers/wait.js';

const ADDON = join(REPO_ROOT, 'build', 'Release', 'ladder_aead.node');
const skip = skipUnless(
  typeof nativeAddon()?.releaseIdleMemory === 'function',
  'the native addon with releaseIdleMemory (npm run build:native)',
);

/** The trace line of a collection run by Isolate::LowMemoryNotification. */
const LOW_MEMORY_GC = /Mark-Compact \(reduce\).*low memory notification/;

/** `node --trace-gc bin/ladder.js …argv` until listening on `port` and 1.5 s more; its stdout. */
async function traceGc(argv: string[], port: number, env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(process.execPath, ['--trace-gc', ...argv], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await waitListening(child, port);
    await sleep(1500);
    return out;
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

describe('releaseIdleMemory once started', { skip, timeout: 60_000 }, () => {
  for (const on of [true, false]) {
    it(`${on ? 'default' : 'LADDER_IDLE_RELEASE=0 (control)'}: client and unmanaged server`, async () => {
      const env = on ? {} : { LADDER_IDLE_RELEASE: '0' };
      const socks = await freePort();
      const key = ssUrl('aes-256-gcm', 'idle-release-pw', '127.0.0.1', await freePort());
      const client = await traceGc(
        [LADDER_BIN, 'client', '--key', key, '--socks', `127.0.0.1:${socks}`],
        socks,
        env,
      );
      const port = await freePort();
      const serverArgv = ladderServerArgv({ port, method: 'aes-256-gcm', password: 'idle-release-pw' });
      const server = await traceGc(serverArgv, port, env);
      for (const [name, out] of [
        ['client', client],
        ['server', server],
      ] as const) {
        assert.ok(out.includes('Scavenge'), `${name}: --trace-gc output read\n${out.slice(-2000)}`);
        assert.equal(
          LOW_MEMORY_GC.test(out),
          on,
          `${name}: a low-memory collection once started\n${out.slice(-2000)}`,
        );
      }
    });
  }

  it('shrinks a grown young generation and drops dead old objects (child process)', () => {
    const script = `
      const v8 = require('node:v8');
      const space = (n) => v8.getHeapSpaceStatistics().find((s) => s.space_name === n);
      // Short-lived objects (the young generation grows), and 2e5 kept long enough to be promoted
      // to the old generation, then dropped: dead there until a full collection.
      let keep = [];
      for (let i = 0; i < 2e5; i++) keep.push({ i, s: 'x'.repeat(i % 50), t: [i] });
      keep = null;
      const at = () => ({ young: space('new_space').space_size, old: space('old_space').space_used_size });
      const before = at();
      const ok = require(${JSON.stringify(ADDON)}).releaseIdleMemory();
      console.log(JSON.stringify({ ok, before, after: at() }));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const { ok, before, after } = JSON.parse(r.stdout) as {
      ok: boolean;
      before: { young: number; old: number };
      after: { young: number; old: number };
    };
    assert.equal(ok, true);
    assert.ok(before.young > 1 << 20, `the young generation grew first (${before.young})`);
    assert.ok(after.young <= 1 << 20, `young generation back at 1 MiB (${before.young} -> ${after.young})`);
    assert.ok(
      before.old - after.old > 8 << 20,
      `old generation's dead objects collected (${before.old} -> ${after.old})`,
    );
  });
});
