/**
 * GET /access-keys streamed from keyset pages and shared between concurrent listings
 * (src/api/key-listing.ts): byte for byte the JSON the Outline-shaped route rendered before
 * (every key through the response schema), across page boundaries; the `limit`/`after`
 * extension; bad values a one-line 400; a rendered page shared only while nothing changed.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { InjectOptions } from 'fastify';
import { ManualClock, type Clock } from '../../src/shared/clock.js';
import { buildApi } from '../../src/api/index.js';
import { statusIndex, toAccessKeyJson } from '../../src/api/context.js';
import { PAGE_KEYS, PAGE_TTL_MS } from '../../src/api/key-listing.js';
import { AccessKeyList } from '../../src/api/schemas.js';
import { createAccessKeys, KeyEnforcer, openStore, parseStoreLocation } from '../../src/store/index.js';
import { RecordingControl, tempDir } from './helpers.js';

type Json = Record<string, unknown>;
type Harness = Awaited<ReturnType<typeof harness>>;

/** An API whose enforcer the test holds, so the old rendering can use the same statuses. */
async function harness(t: TestContext, clock?: Clock) {
  const store = await openStore(parseStoreLocation(undefined, tempDir(t)), {
    ...(clock ? { clock } : {}),
    defaults: { hostname: 'example.org', port: 4444 },
  });
  const enforcer = new KeyEnforcer({ store, control: new RecordingControl(), ...(clock ? { clock } : {}) });
  const app = await buildApi({
    store,
    control: new RecordingControl(),
    enforcer,
    ...(clock ? { clock } : {}),
  });
  await app.ready();
  t.after(async () => {
    await app.close();
    await store.close();
  });
  const prefix = `/${(await store.getSettings()).apiPrefix}`;
  const call = (method: NonNullable<InjectOptions['method']>, path: string, body?: unknown) =>
    app.inject({
      method,
      url: prefix + path,
      ...(body === undefined
        ? {}
        : { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
  return { store, enforcer, app, call };
}

/** What the route answered before streaming: the whole list through the response serializer. */
async function oldListing(h: Harness): Promise<string> {
  const [keys, settings] = await Promise.all([h.store.listKeys(), h.store.getSettings()]);
  const statuses = statusIndex(h.enforcer);
  const list = { accessKeys: keys.map((k) => toAccessKeyJson(k, settings, statuses.get(k.id))) };
  return JSON.stringify(AccessKeyList.encode(list));
}

async function severalKeys(h: Harness): Promise<void> {
  const post = async (path: string, method: 'POST' | 'PUT', body: unknown): Promise<void> => {
    const r = await h.call(method, path, body);
    assert.equal(r.statusCode, 201, r.body);
  };
  await post('/access-keys', 'POST', { name: 'plain' });
  await post('/access-keys', 'POST', { name: 'limited "quoted" ünïcode', limit: { bytes: 5000 } });
  await post('/access-keys/custom-id', 'PUT', { name: 'chosen id', expiresAt: '2031-01-02T03:04:05Z' });
  await post('/access-keys', 'POST', { method: '2022-blake3-aes-256-gcm', name: '2022' });
  await post('/access-keys', 'POST', { name: 'off', enabled: false, dataLimitPeriod: 'monthly' });
}

test('the streamed listing is byte for byte the old JSON (known answer, several kinds of key)', async (t) => {
  const h = await harness(t);
  assert.equal((await h.call('GET', '/access-keys')).body, '{"accessKeys":[]}', 'empty store');
  await severalKeys(h);
  h.store.addBytes('1', 1000, 2000);
  await h.enforcer.refresh(); // states and usage in the listing
  const r = await h.call('GET', '/access-keys');
  assert.equal(r.statusCode, 200);
  assert.match(String(r.headers['content-type']), /^application\/json; charset=utf-8$/);
  const old = await oldListing(h);
  assert.equal(r.body, old);
  const keys = (JSON.parse(r.body) as { accessKeys: Json[] }).accessKeys;
  assert.deepEqual(
    keys.map((k) => [k.id, k.name]),
    [
      ['0', 'plain'],
      ['1', 'limited "quoted" ünïcode'],
      ['custom-id', 'chosen id'],
      ['2', '2022'],
      ['3', 'off'],
    ],
  );
  // The order of fields is the schema's, as the serializer rendered it, not toAccessKeyJson's:
  // rendering the records without the schema would not match (the comparison can fail).
  assert.deepEqual(Object.keys(keys[1]!).slice(0, 8), [
    'id',
    'name',
    'password',
    'port',
    'method',
    'accessUrl',
    'dataLimit',
    'dataLimitPeriod',
  ]);
  const settings = await h.store.getSettings();
  const raw = { accessKeys: (await h.store.listKeys()).map((k) => toAccessKeyJson(k, settings)) };
  assert.notEqual(JSON.stringify(raw), old, 'negative control: unserialized records differ');
});

test('across page boundaries: the full stream, and limit/after pages that add up to it', async (t) => {
  const h = await harness(t);
  const total = 2 * PAGE_KEYS + 3;
  await createAccessKeys(h.store, { count: total, method: 'chacha20-ietf-poly1305', name: 'bulk' });
  const full = await h.call('GET', '/access-keys');
  assert.equal(full.body, await oldListing(h));
  const all = (JSON.parse(full.body) as { accessKeys: Json[] }).accessKeys;
  assert.equal(all.length, total);

  const walk = async (limit: number): Promise<Json[][]> => {
    const pages: Json[][] = [];
    let after: string | undefined;
    for (let i = 0; i < 100; i++) {
      const q = `?limit=${limit}${after === undefined ? '' : `&after=${after}`}`;
      const r = await h.call('GET', `/access-keys${q}`);
      assert.equal(r.statusCode, 200, r.body);
      const page = JSON.parse(r.body) as { accessKeys: Json[]; next?: string };
      pages.push(page.accessKeys);
      if (page.next === undefined) return pages;
      after = page.next;
    }
    throw new Error('pagination did not end');
  };
  const byThousand = await walk(1000);
  assert.deepEqual(
    byThousand.map((p) => p.length),
    [1000, 3],
  );
  assert.deepEqual(byThousand.flat(), all);
  // A last page that is exactly full: one more (empty) page without `next`.
  const by59 = await walk(59); // 1003 = 17 × 59
  assert.deepEqual(
    by59.map((p) => p.length),
    [...Array<number>(17).fill(59), 0],
  );
  assert.deepEqual(by59.flat(), all);
  // `after` alone pages by PAGE_KEYS.
  const first = JSON.parse((await h.call('GET', '/access-keys?limit=1')).body) as { next: string };
  const rest = JSON.parse((await h.call('GET', `/access-keys?after=${first.next}`)).body) as {
    accessKeys: Json[];
  };
  assert.deepEqual(rest.accessKeys, all.slice(1, 1 + PAGE_KEYS));
  // A key deleted after its page was read does not break the cursor.
  const cut = JSON.parse((await h.call('GET', '/access-keys?limit=10')).body) as {
    accessKeys: Json[];
    next: string;
  };
  assert.equal((await h.call('DELETE', `/access-keys/${String(cut.accessKeys[9]!.id)}`)).statusCode, 204);
  const after = JSON.parse((await h.call('GET', `/access-keys?limit=2&after=${cut.next}`)).body) as {
    accessKeys: Json[];
  };
  const ids = (keys: Json[]): unknown[] => keys.map((k) => k.id);
  assert.deepEqual(ids(after.accessKeys), ids(all.slice(10, 12)));
});

test('a bad limit or after is a one-line 400 naming the field', async (t) => {
  const h = await harness(t);
  await severalKeys(h);
  const next = (JSON.parse((await h.call('GET', '/access-keys?limit=1')).body) as { next: string }).next;
  const tampered = Buffer.from('x:0').toString('base64url');
  for (const [q, field] of [
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['limit=abc', 'limit'],
    ['limit=1.5', 'limit'],
    ['limit=-1', 'limit'],
    ['limit=', 'limit'],
    ['after=not%20a%20cursor', 'after'],
    [`after=${tampered}`, 'after'],
    [`after=${next}x`, 'after'],
    ['after=', 'after'],
  ] as const) {
    const r = await h.call('GET', `/access-keys?${q}`);
    assert.equal(r.statusCode, 400, q);
    const body = JSON.parse(r.body) as { code: string; message: string; field: string };
    assert.equal(body.field, field, q);
    assert.equal(body.code, 'InvalidArgumentError', q);
    assert.doesNotMatch(body.message, /\n/, q);
  }
  // The control: the same parameters, well-formed, are accepted.
  assert.equal((await h.call('GET', `/access-keys?limit=1000&after=${next}`)).statusCode, 200);
});

test('a rendered page is shared while fresh: every change shows at once, the rest within the TTL', async (t) => {
  const clock = new ManualClock();
  const h = await harness(t, clock);
  await severalKeys(h);
  let reads = 0;
  const pageOf = h.store.listKeysPage.bind(h.store);
  h.store.listKeysPage = (limit, after) => {
    reads++;
    return pageOf(limit, after);
  };
  const list = async (): Promise<Json[]> =>
    (JSON.parse((await h.call('GET', '/access-keys')).body) as { accessKeys: Json[] }).accessKeys;

  // Concurrent listings render the (only) page once.
  const many = await Promise.all(Array.from({ length: 20 }, list));
  assert.equal(reads, 1, 'one store read for 20 concurrent listings');
  for (const l of many) assert.deepEqual(l, many[0]);

  // Any key or settings change through the store is visible to the next listing.
  assert.equal((await h.call('PUT', '/access-keys/0/name', { name: 'renamed' })).statusCode, 204);
  assert.equal((await list())[0]!.name, 'renamed');
  await h.call('PUT', '/server/hostname-for-access-keys', { hostname: 'moved.example.net' });
  assert.match(String((await list())[0]!.accessUrl), /@moved\.example\.net:/);
  const made = JSON.parse((await h.call('POST', '/access-keys', { name: 'new' })).body) as Json;
  assert.equal((await list()).at(-1)!.id, made.id);
  await h.call('DELETE', `/access-keys/${String(made.id)}`);
  assert.equal((await list()).length, 5);

  // Traffic moves lastTrafficSeen without a key change: shared for at most PAGE_TTL_MS.
  const before = reads;
  h.store.addBytes('0', 10, 10);
  await h.store.flush();
  assert.equal((await list())[0]!.lastTrafficSeenTimestampMs, undefined, 'still the shared page');
  assert.equal(reads, before);
  clock.advance(PAGE_TTL_MS);
  assert.equal((await list())[0]!.lastTrafficSeenTimestampMs, clock.now() - PAGE_TTL_MS);
  assert.equal(reads, before + 1);
});
