/**
 * LADDER_SCHED_BATCH=1 (off by default): `ladder client` and `ladder server` put every thread in
 * SCHED_BATCH once started (native/sched.cc schedBatch, src/cli/main.ts), threads made later
 * included (the server's data-plane worker); without it every thread stays SCHED_OTHER (the
 * control). Child processes do not inherit it: a fork's child goes back to the policy from before
 * (the peers a lab or probe spawns). The policy is read from /proc/PID/task/TID/stat (field 41).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { startLadderClient, startLadderServer, ssUrl } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep } from '../helpers/wait.js';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;
const skip = skipUnless(
  process.platform === 'linux' &&
    typeof (nativeRelay() as { schedBatch?: unknown } | undefined)?.schedBatch === 'function',
  'the native addon with schedBatch (Linux; npm run build:native)',
);

/** The scheduling policy in a /proc stat line. */
const policyOf = (stat: string): number => Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);

/** The scheduling policy of each thread of pid. */
function policies(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      out.push(policyOf(stat));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

describe('LADDER_SCHED_BATCH', { skip, timeout: 60_000 }, () => {
  for (const on of [true, false]) {
    it(`${on ? '=1: every thread of client and server SCHED_BATCH' : 'unset: SCHED_OTHER (control)'}`, async () => {
      const env = on ? { LADDER_SCHED_BATCH: '1' } : {};
      const password = 'sched-batch-pw';
      const server = await startLadderServer({
        method: 'aes-256-gcm',
        password,
        env,
        extraArgs: ['--workers', '1'],
      });
      try {
        const client = await startLadderClient({
          key: ssUrl('aes-256-gcm', password, '127.0.0.1', server.port),
          env,
        });
        try {
          await sleep(300); // started: whenStarted has run
          for (const p of [server, client]) {
            const got = policies(p.pid);
            assert.ok(got.length > 1, 'threads read');
            assert.deepEqual(
              [...new Set(got)],
              [on ? SCHED_BATCH : SCHED_OTHER],
              `${p === server ? 'server' : 'client'} threads' policies`,
            );
          }
        } finally {
          await client.stop(5000);
        }
      } finally {
        await server.stop(5000);
      }
    });
  }
});

describe('schedBatch and child processes', { skip, timeout: 30_000 }, () => {
  // Last in this file: it puts this test process's own threads in SCHED_BATCH.
  it('a child process started afterwards runs SCHED_OTHER; this process stays SCHED_BATCH', () => {
    const set = (nativeRelay() as unknown as { schedBatch(): number }).schedBatch();
    assert.ok(set > 0, `threads set: ${set}`);
    assert.deepEqual([...new Set(policies(process.pid))], [SCHED_BATCH], 'this process (the control)');
    const child = execFileSync('cat', ['/proc/self/stat'], { encoding: 'utf8' });
    assert.equal(policyOf(child), SCHED_OTHER, 'the child process');
    const viaShell = execFileSync('/bin/sh', ['-c', 'cat /proc/$$/stat'], { encoding: 'utf8' });
    assert.equal(policyOf(viaShell), SCHED_OTHER, 'a shell the child started');
  });
});
