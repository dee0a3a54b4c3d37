/**
 * The refusal log is one report for the whole server, not one per data-plane worker thread: a
 * `ladder server --workers 2` that gets garbage connections on both workers says "a connection
 * did not authenticate" once, and counts the rest in one line (at its 60 s window or at close),
 * without the client's address. (Each worker used to keep a refusal log of its own: two first
 * lines in the same second and two counts, although the text promises one per 60 s.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { reusePortAvailable } from '../../src/server/workers/reuseport.js';
import { startLadderServer } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const GARBAGE = 40;
const NEED = 'the native addon with SO_REUSEPORT sockets (node scripts/build-native.mjs)';

/** Connect, send 80 random bytes (no key decrypts them), close after 100 ms. */
function garbage(port: number): Promise<number> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(randomBytes(80));
      setTimeout(() => s.destroy(), 100);
    });
    s.on('error', () => {});
    s.on('close', () => resolve(s.localPort ?? 0));
  });
}

function lines(output: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const l of output.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      /* not a log line */
    }
  }
  return out;
}

test(
  'two workers: one "did not authenticate" line and one count for garbage on both workers',
  { skip: skipUnless(reusePortAvailable(), NEED), timeout: 60_000 },
  async () => {
    const server = await startLadderServer({
      method: 'aes-256-gcm',
      password: 'refusal-workers-password-5c1e',
      extraArgs: ['--workers', '2'],
      // Debug: each worker's "connection closed" line names it, to check both got garbage.
      env: { LADDER_LOG_LEVEL: 'debug' },
    });
    let clientPorts: number[];
    try {
      clientPorts = await Promise.all(Array.from({ length: GARBAGE }, () => garbage(server.port)));
      const closedBy = (): Set<unknown> =>
        new Set(
          lines(server.output())
            .filter((l) => l.msg === 'connection closed' && l.keyId === undefined)
            .map((l) => l.worker),
        );
      await waitFor(() => closedBy().size === 2, {
        timeoutMs: 10_000,
        message: () => `garbage closed on both workers:\n${server.output()}`,
      });
      // The workers post their events every 250 ms: let the last ones reach the main thread.
      await new Promise((r) => setTimeout(r, 600));
    } finally {
      await server.stop(10_000);
    }
    const all = lines(server.output());
    const told = all.filter((l) => String(l.msg).includes('did not authenticate'));
    const first = told.filter((l) => String(l.msg).startsWith('a connection did not authenticate'));
    const counts = told.filter((l) => typeof l.unauthenticated === 'number');
    assert.equal(first.length, 1, `one first line for the server:\n${JSON.stringify(told, null, 1)}`);
    assert.equal(counts.length, 1, `one count at close:\n${JSON.stringify(told, null, 1)}`);
    assert.equal(counts[0]!.unauthenticated, GARBAGE - 1);
    assert.match(
      String(counts[0]!.msg),
      /^39 more connections did not authenticate with any key in the last 60 s/,
    );
    const text = told.map((l) => JSON.stringify(l)).join('\n');
    for (const p of clientPorts) assert.ok(!text.includes(`:${p}`) && !text.includes(`"${p}"`), text);
    assert.ok(!text.includes('127.0.0.1'), text);
  },
);
