/**
 * A caller-chosen secret is refused on rotation (409 ConflictError, Outline's error body, field
 * "password") when another key has it with the same method: two such keys cannot be told apart
 * on the wire. Create (POST, PUT) refuses it for 2022 methods only (the data plane skips the
 * second key); a SIP004 one is taken there, as Outline takes it. And rotating a SIP023 (2022 multi-user) key keeps the
 * identity PSK it has: one its creator chose stays (it moved to the server's before), as the
 * server's does. SQLite, through the API in-process; the CLI's local rotation is the same
 * function (rotatedSecret), its conflict a one-line usage error.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { harness, tempDir } from './helpers.js';
import { inproc } from './keys-inproc.js';

interface KeyJson {
  id: string;
  password: string;
  method: string;
}
const psk16 = (): string => randomBytes(16).toString('base64');

test('a secret another key has is refused on rotation (409), and a 2022 one on create and PUT', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const SHARED = 'shared-secret-1';
  const a = await h.call('POST', '/access-keys', { method: 'chacha20-ietf-poly1305', password: SHARED });
  assert.equal(a.statusCode, 201, a.body);
  const b = JSON.parse(
    (await h.call('POST', '/access-keys', { method: 'chacha20-ietf-poly1305' })).body,
  ) as KeyJson;

  const rotated = await h.call('POST', `/access-keys/${b.id}/rotate`, { password: SHARED });
  assert.equal(rotated.statusCode, 409, rotated.body);
  const body = JSON.parse(rotated.body) as { code: string; message: string; field: string };
  assert.equal(body.code, 'ConflictError');
  assert.equal(body.field, 'password');
  assert.match(body.message, /already uses this password/);
  assert.ok(!rotated.body.includes(SHARED), 'no secret echoed');
  const bNow = JSON.parse((await h.call('GET', `/access-keys/${b.id}`)).body) as KeyJson;
  assert.equal(bNow.password, b.password, 'the refused rotation changed nothing');

  // Create and PUT take a SIP004 password another key has, as Outline does (its spec's examples
  // do so; both keys work), but not a 2022 one: the data plane would skip the second key.
  const posted = await h.call('POST', '/access-keys', { method: 'chacha20-ietf-poly1305', password: SHARED });
  assert.equal(posted.statusCode, 201, posted.body);
  const method = '2022-blake3-aes-128-gcm';
  const single = { method, multiUser: false, password: randomBytes(16).toString('base64') };
  assert.equal((await h.call('POST', '/access-keys', single)).statusCode, 201);
  const again = await h.call('POST', '/access-keys', single);
  assert.equal(again.statusCode, 409, again.body);
  assert.equal((JSON.parse(again.body) as { code: string }).code, 'ConflictError');
  const put = await h.call('PUT', '/access-keys/newid', single);
  assert.equal(put.statusCode, 409, put.body);
  // The same PSK spelt otherwise (base64url, no padding) is the same key on the wire.
  const respelt = single.password.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  const sneaked = await h.call('POST', '/access-keys', { ...single, password: respelt });
  assert.equal(sneaked.statusCode, 409, sneaked.body);
  assert.equal((await h.call('GET', '/access-keys/newid')).statusCode, 404, 'nothing made');

  // Controls: the same text with another method is a different key; a fresh rotation is fine.
  const other = await h.call('POST', '/access-keys', { method: 'aes-256-gcm', password: SHARED });
  assert.equal(other.statusCode, 201, other.body);
  assert.equal((await h.call('POST', `/access-keys/${b.id}/rotate`)).statusCode, 200);

  // The CLI's local rotation: one line, exit 2, nothing changed.
  const before = JSON.parse((await h.call('GET', `/access-keys/${b.id}`)).body) as KeyJson;
  const cli = await inproc(['keys', '--data-dir', h.dir, 'rotate', b.id, '--password', SHARED]);
  assert.equal(cli.code, 2);
  assert.match(cli.stderr, /--password: access key .* already uses this password/);
  assert.equal(
    (JSON.parse((await h.call('GET', `/access-keys/${b.id}`)).body) as KeyJson).password,
    before.password,
  );
});

test('rotating a 2022 multi-user key keeps the identity PSK it has', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const method = '2022-blake3-aes-128-gcm';
  const chosenIdentity = psk16();
  const mine = await h.call('POST', '/access-keys', { method, password: `${chosenIdentity}:${psk16()}` });
  assert.equal(mine.statusCode, 201, mine.body);
  const k = JSON.parse(mine.body) as KeyJson;
  const served = JSON.parse((await h.call('POST', '/access-keys', { method })).body) as KeyJson;
  const serverIdentity = served.password.split(':')[0]!;
  assert.notEqual(serverIdentity, chosenIdentity);

  const fresh = JSON.parse((await h.call('POST', `/access-keys/${k.id}/rotate`)).body) as KeyJson;
  assert.equal(fresh.password.split(':')[0], chosenIdentity, 'a fresh secret keeps the chosen identity PSK');
  assert.notEqual(fresh.password, k.password);

  const user = psk16();
  const given = await h.call('POST', `/access-keys/${k.id}/rotate`, { password: user });
  assert.equal(given.statusCode, 200, given.body);
  assert.equal(
    (JSON.parse(given.body) as KeyJson).password,
    `${chosenIdentity}:${user}`,
    'a uPSK alone keeps it too',
  );

  const whole = `${serverIdentity}:${psk16()}`;
  const moved = await h.call('POST', `/access-keys/${k.id}/rotate`, { password: whole });
  assert.equal((JSON.parse(moved.body) as KeyJson).password, whole, 'a whole iPSK:uPSK is taken as given');

  // The control: a key with the server's identity keeps the server's.
  const s2 = JSON.parse((await h.call('POST', `/access-keys/${served.id}/rotate`)).body) as KeyJson;
  assert.equal(s2.password.split(':')[0], serverIdentity);
});
