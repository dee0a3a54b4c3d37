import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DynamicKeyFetchError, parseDynamicKeyUrl } from '../../src/client/dynamic-fetch.js';
import type { DynamicKeyBody } from '../../src/client/dynamic-key.js';
import { DynamicKeySource } from '../../src/client/key-source.js';
import { ManualClock } from '../../src/shared/clock.js';

const legacy = (port: number): string =>
  JSON.stringify({ server: '198.51.100.7', server_port: port, method: 'aes-256-gcm', password: 'pw-source' });
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('key source: fetched on a schedule, sooner on failures (never later than due), errors retried, last body kept', async () => {
  const clock = new ManualClock();
  const answers: Array<string | Error> = [legacy(1)];
  let fetches = 0;
  const bodies: DynamicKeyBody[] = [];
  const errors: string[] = [];
  const src = new DynamicKeySource({
    key: parseDynamicKeyUrl('ssconf://keys.example/access/T'),
    clock,
    refreshMs: 600_000,
    errorRetryMs: 60_000,
    minRefetchMs: 30_000,
    fetch: async () => {
      fetches++;
      const a = answers.shift() ?? legacy(1);
      if (a instanceof Error) throw a;
      return a;
    },
    onBody: (b) => bodies.push(b),
    onFetchError: (e) => errors.push(e.message),
  });
  const first = await src.start();
  assert.equal(first.kind, 'endpoints');
  assert.equal(fetches, 1);

  // A failure soon after a fetch waits for minRefetchMs, then fetches once.
  clock.advance(10_000);
  src.refreshSoon();
  src.refreshSoon();
  clock.advance(19_000);
  await settle();
  assert.equal(fetches, 1, 'not before 30 s since the last fetch');
  answers.push(legacy(2));
  clock.advance(1000);
  await settle();
  assert.equal(fetches, 2);
  const latest = bodies.at(-1);
  assert.equal(latest?.kind === 'endpoints' ? latest.endpoints[0]!.port : 0, 2, 'the new body was handed on');

  // The regular refresh, then the server's refusal: retried every errorRetryMs, and a
  // refreshSoon() in between does not push the due retry later.
  answers.push('{"error":{"message":"Quota exceeded"}}');
  clock.advance(600_000);
  await settle();
  assert.equal(fetches, 3);
  assert.equal(src.refusal, 'server says: Quota exceeded');
  clock.advance(50_000);
  src.refreshSoon();
  clock.advance(10_000);
  await settle();
  assert.equal(fetches, 4, 'the retry came at 60 s as due');
  assert.equal(src.refusal, undefined, 'accepted again');

  // A failed fetch keeps the last body (no onBody) and is retried after errorRetryMs.
  answers.push(new DynamicKeyFetchError('cannot reach the key server (ECONNREFUSED)', false));
  const before = bodies.length;
  clock.advance(600_000);
  await settle();
  assert.equal(fetches, 5);
  assert.deepEqual(errors, ['cannot reach the key server (ECONNREFUSED)']);
  assert.equal(bodies.length, before, 'the last good body stays in use');
  clock.advance(60_000);
  await settle();
  assert.equal(fetches, 6, 'retried after a minute, not ten');
  src.close();
  clock.advance(3_600_000);
  await settle();
  assert.equal(fetches, 6, 'closed: no more fetches');
});
