/**
 * A name target on the lean path (lean-path.ts, `checked` 3) reacts as connection.ts's full path
 * does on the same bytes (review17): odd names (255 bytes, NUL, '%', a trailing dot, upper case),
 * names whose answers are private in every spelling (10/8, loopback, ::1, fe80::, IPv4-mapped),
 * a mix of private and public answers, an IPv6 answer, fall-through to the next address: the same
 * status and errno, the same bytes back and the same reaction, the same text to the resolver.
 *
 * (review17: a guard; it passed on names17 as merged.)
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { leanPathServed } from '../../src/server/lean-path.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { request, startServer, type Run } from '../helpers/name-server.js';
import { probeOnce } from '../probing/prober.js';
import { waitFor } from '../helpers/wait.js';

const ANSWERS: Record<string, string[]> = {
  ['a'.repeat(250) + '.test']: ['127.0.0.1'],
  'nul\0.test': ['127.0.0.1'],
  '%41.test': ['127.0.0.1'],
  'dot.test.': ['127.0.0.1'],
  'UPPER.TEST': ['127.0.0.1'],
  'ten.test': ['10.1.2.3'],
  'lo.test': ['127.0.0.1'],
  'v6lo.test': ['::1'],
  'll.test': ['fe80::1'],
  'mapped.test': ['::ffff:127.0.0.1'],
  'mapped10.test': ['::ffff:10.0.0.1'],
  'mix.test': ['10.0.0.1', '127.0.0.2', '127.0.0.1'],
  'six.test': ['::1', '127.0.0.1'],
  'two.test': ['127.0.0.2', '127.0.0.1'],
};

async function run(lean: boolean, allowPrivate: boolean, echo: TestServer): Promise<string[]> {
  const r: Run = await startServer(true, { lookup: (h) => ANSWERS[h] ?? [], allowPrivate, leanPath: lean });
  const served = leanPathServed();
  const out: string[] = [];
  try {
    for (const name of Object.keys(ANSWERS)) {
      const data = Buffer.from(`to ${name.length}`);
      const res = await probeOnce(
        r.port,
        { label: name, payload: request(name, echo.port, data) },
        {
          halfClose: true,
          giveUpMs: 3000,
        },
      );
      await waitFor(() => r.closed.length === out.length + 1, { timeoutMs: 3000 });
      const e = r.closed[out.length]!;
      out.push(
        `${JSON.stringify(name).slice(0, 24)}: ${e.status} ${e.errno ?? '-'} back ${res.bytesBack > 0} ${res.reaction}`,
      );
    }
    out.push(`resolver saw ${JSON.stringify(r.lookups.map((h) => h.slice(0, 12)))}`);
  } finally {
    await r.server.close();
  }
  if (lean)
    assert.ok(leanPathServed() - served >= Object.keys(ANSWERS).length, 'the names took the lean path');
  return out;
}

describe('a name on the lean path reacts as on the full path', () => {
  let echo: TestServer;
  before(async () => void (echo = await startEcho()));
  after(async () => echo.close());

  for (const allowPrivate of [false, true]) {
    it(`allowPrivate ${allowPrivate}`, async () => {
      const lean = await run(true, allowPrivate, echo);
      const full = await run(false, allowPrivate, echo);
      assert.deepEqual(lean, full);
      if (!allowPrivate) {
        for (const line of lean.filter((l) => !l.startsWith('resolver')))
          assert.match(line, /ERR_FORBIDDEN|ERR_RESOLVE|ERR_CONNECT/, `private refused: ${line}`);
      }
    });
  }
});
