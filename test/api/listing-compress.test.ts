/**
 * GET /access-keys compressed when the client accepts it (src/api/compress.ts), and `?fields=`
 * (src/api/key-listing.ts): decompressed bytes equal the plain ones (known answer across keyset
 * pages, brotli and gzip); no accept-encoding = the plain bytes with no content-encoding (Outline
 * clients); `fields` keeps exactly the named fields with the full listing's values; a bad
 * `fields` is a one-line 400 naming it.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { chooseEncoding, MIN_COMPRESS_BYTES } from '../../src/api/compress.js';
import { PAGE_KEYS } from '../../src/api/key-listing.js';
import { harness, tempDir, type Harness } from './helpers.js';

type Key = Record<string, unknown>;

async function withKeys(t: TestContext, n: number): Promise<Harness> {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  for (let left = n; left > 0; left -= 1000) {
    const r = await h.call('POST', '/access-keys/bulk', { count: Math.min(1000, left), name: 'k' });
    assert.equal(r.statusCode, 201, r.body);
  }
  return h;
}

const get = (h: Harness, path: string, accept?: string) =>
  h.app.inject({
    method: 'GET',
    url: h.prefix + path,
    headers: accept === undefined ? {} : { 'accept-encoding': accept },
  });

test('accept-encoding chooses br, else gzip; q=0 refuses; none or identity = plain', () => {
  assert.equal(chooseEncoding(undefined), undefined);
  assert.equal(chooseEncoding(''), undefined);
  assert.equal(chooseEncoding('identity'), undefined);
  assert.equal(chooseEncoding('gzip, deflate, br, zstd'), 'br');
  assert.equal(chooseEncoding('gzip'), 'gzip');
  assert.equal(chooseEncoding('br;q=0, gzip;q=0.5'), 'gzip');
  assert.equal(chooseEncoding('br;q=0,gzip;q=0'), undefined);
  assert.equal(chooseEncoding('deflate'), undefined);
});

test('the full listing decompresses to exactly the plain bytes (brotli and gzip, several pages)', async (t) => {
  const h = await withKeys(t, PAGE_KEYS * 2 + 7);
  const plain = await get(h, '/access-keys');
  assert.equal(plain.statusCode, 200);
  assert.equal(plain.headers['content-encoding'], undefined, 'no accept-encoding: not compressed');
  assert.equal((JSON.parse(plain.body) as { accessKeys: Key[] }).accessKeys.length, PAGE_KEYS * 2 + 7);
  const identity = await get(h, '/access-keys', 'identity');
  assert.equal(identity.headers['content-encoding'], undefined);
  assert.ok(identity.rawPayload.equals(plain.rawPayload));
  for (const [accept, enc, inflate] of [
    ['gzip, deflate, br', 'br', brotliDecompressSync],
    ['gzip', 'gzip', gunzipSync],
  ] as const) {
    const r = await get(h, '/access-keys', accept);
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['content-encoding'], enc);
    assert.equal(r.headers.vary, 'accept-encoding');
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.ok(r.rawPayload.length < plain.rawPayload.length / 4, `${enc}: ${r.rawPayload.length} bytes`);
    assert.ok(inflate(r.rawPayload).equals(plain.rawPayload), `${enc}: decompressed = plain`);
  }
});

test('a page: compressed when large, plain when tiny; fields keep exactly what was named', async (t) => {
  const h = await withKeys(t, 30);
  const page = await get(h, '/access-keys?limit=20', 'gzip');
  assert.equal(page.headers['content-encoding'], 'gzip');
  const plainPage = await get(h, '/access-keys?limit=20');
  assert.ok(gunzipSync(page.rawPayload).equals(plainPage.rawPayload));
  const tiny = await get(h, '/access-keys?limit=1&fields=name', 'gzip');
  assert.ok(tiny.rawPayload.length < MIN_COMPRESS_BYTES);
  assert.equal(tiny.headers['content-encoding'], undefined, 'a tiny body goes out plain');

  const full = (JSON.parse((await get(h, '/access-keys')).body) as { accessKeys: Key[] }).accessKeys;
  const some = (
    JSON.parse((await get(h, '/access-keys?fields=enabled,name,dataUsed')).body) as {
      accessKeys: Key[];
    }
  ).accessKeys;
  assert.equal(some.length, full.length);
  some.forEach((k, i) => {
    const want: Key = { id: full[i]!.id, name: full[i]!.name, enabled: full[i]!.enabled };
    if (full[i]!.dataUsed !== undefined) want.dataUsed = full[i]!.dataUsed;
    assert.deepEqual(k, want);
    assert.equal(k.password, undefined, 'no secret the table does not ask for');
  });
  // Control: without fields the secrets and URLs are there.
  assert.equal(typeof full[0]!.password, 'string');
  assert.equal(typeof full[0]!.accessUrl, 'string');

  for (const bad of ['', 'name,password2', 'name,,enabled', 'x'.repeat(200)]) {
    const r = await get(h, `/access-keys?fields=${encodeURIComponent(bad)}`);
    assert.equal(r.statusCode, 400, bad);
    const body = JSON.parse(r.body) as { field: string; message: string };
    assert.equal(body.field, 'fields');
    assert.doesNotMatch(body.message, /\n|password2/);
  }
});
