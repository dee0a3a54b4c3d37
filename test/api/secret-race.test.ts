/**
 * A chosen 2022 secret another key has is refused (409) in the key write's own transaction, not
 * by a read before it: requests sent at once with one secret (to the API on a SQLite file; to
 * two PostgreSQL nodes of one store) make exactly one key with it. The same for rotations of several keys to one secret, and
 * for a creation racing rotations. The losers change nothing. To make the race certain rather
 * than likely, every key write waits at a gate until all the requests of a round have reached
 * their write (a check made before the write has then passed for all of them).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { wireSecret } from '../../src/api/key-secrets.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { harness, tempDir, type Harness } from './helpers.js';

const METHOD = '2022-blake3-aes-128-gcm';
const N = 8;

interface KeyJson {
  id: string;
  password: string;
}

/**
 * A gate in front of the stores' key writes: while armed for `n`, each write waits until `n`
 * have arrived (or 2 s), then all go on together.
 */
class WriteGate {
  #n = 0;
  #waiting: Array<() => void> = [];
  arm(n: number): void {
    this.#n = n;
  }
  disarm(): void {
    this.#n = 0;
    for (const w of this.#waiting.splice(0)) w();
  }
  pass(): Promise<void> {
    if (this.#n === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      if (this.#waiting.length >= this.#n) for (const w of this.#waiting.splice(0)) w();
      else setTimeout(resolve, 2000).unref();
    });
  }
  /** Put the gate in front of `h`'s store's createKeys and updateKey. */
  guard(h: Harness): Harness {
    const store = h.store;
    const create = store.createKeys.bind(store);
    const update = store.updateKey.bind(store);
    store.createKeys = async (...a) => (await this.pass(), create(...a));
    store.updateKey = async (...a) => (await this.pass(), update(...a));
    return h;
  }
}
const gate = new WriteGate();

/** How many keys of METHOD have `secret` on the wire, read from the store. */
async function holders(h: Harness, secret: string): Promise<string[]> {
  const wire = wireSecret(METHOD, secret);
  return (await h.store.listKeys())
    .filter((k) => k.method === METHOD && wireSecret(METHOD, k.secret) === wire)
    .map((k) => k.id);
}

/** The status codes of `n` requests made at once, alternating between the two instances. */
async function atOnce(
  hs: readonly Harness[],
  n: number,
  req: (h: Harness, i: number) => ReturnType<Harness['call']>,
): Promise<number[]> {
  gate.arm(n);
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => req(hs[i % hs.length]!, i)));
  gate.disarm();
  for (const r of rs) assert.ok(r.statusCode === 409 || r.statusCode < 300, `${r.statusCode} ${r.body}`);
  return rs.map((r) => r.statusCode);
}

async function race(hs: readonly Harness[]): Promise<void> {
  const [h] = hs as [Harness];
  // Creations at once: one key gets the PSK, every other request is a 409.
  const psk = randomBytes(16).toString('base64');
  const body = { method: METHOD, multiUser: false, password: psk };
  const created = await atOnce(hs, N, (x) => x.call('POST', '/access-keys', body));
  assert.equal(created.filter((c) => c === 201).length, 1, `creations: ${created.join(' ')}`);
  assert.equal((await holders(h, psk)).length, 1);

  // Rotations of N other keys to one new PSK at once: one key ends with it.
  const others: KeyJson[] = [];
  for (let i = 0; i < N; i++)
    others.push(
      JSON.parse((await h.call('POST', '/access-keys', { method: METHOD, multiUser: false })).body),
    );
  const next = randomBytes(16).toString('base64');
  const rotated = await atOnce(hs, N, (x, i) =>
    x.call('POST', `/access-keys/${others[i]!.id}/rotate`, { password: next }),
  );
  assert.equal(rotated.filter((c) => c === 200).length, 1, `rotations: ${rotated.join(' ')}`);
  assert.equal((await holders(h, next)).length, 1);
  const kept = (await h.store.listKeys()).filter((k) =>
    others.some((o) => o.id === k.id && o.password === k.secret),
  );
  assert.equal(kept.length, N - 1, 'a refused rotation left its key as it was');

  // A creation (PUT with an id) racing rotations to the same PSK.
  const third = randomBytes(16).toString('base64');
  const mixed = await atOnce(hs, N, (x, i) =>
    i % 2 === 0
      ? x.call('PUT', `/access-keys/race-${i}`, { method: METHOD, multiUser: false, password: third })
      : x.call('POST', `/access-keys/${others[i]!.id}/rotate`, { password: third }),
  );
  assert.equal(mixed.filter((c) => c !== 409).length, 1, `mixed: ${mixed.join(' ')}`);
  assert.equal((await holders(h, third)).length, 1);
}

// One API instance: two store instances on one SQLite file in one process would block each other
// (better-sqlite3 waits for the file lock synchronously); across processes BEGIN IMMEDIATE queues.
test('SQLite: one 2022 secret, requests at once: one key gets it', async (t) => {
  const h = gate.guard(await harness(tempDir(t)));
  t.after(() => h.close());
  await race([h]);
});

let pg: PgCluster | undefined;
after(() => pg?.destroy());

test('PostgreSQL: the same through two nodes of one store', { skip: SKIP_WITHOUT_POSTGRES }, async (t) => {
  if (!HAVE_POSTGRES) return;
  pg = await startPostgres();
  const node = async (): Promise<Harness> => gate.guard(await harness(tempDir(t), { store: pg!.url }));
  const hs = [await node(), await node()];
  t.after(async () => {
    for (const h of hs) await h.close();
  });
  await race(hs);
});
