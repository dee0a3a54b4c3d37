// Device and speed limits through the management API (docs/limits.md, docs/api.md): the key JSON
// carries them as `deviceLimit: {devices}` / `speedLimit: {bytesPerSecond}` (absent: none), PUT and
// DELETE /access-keys/{id}/device-limit|speed-limit set and remove them (the data plane gets the
// change), POST /access-keys, PUT /access-keys/{id} and the bulk route take both, bad bodies get a
// 400 naming the field, and keys with limits still validate against Outline's spec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, tempDir } from './helpers.js';
import { Walker, type Json } from './outline-spec.js';
import { formatTable } from '../../src/cli/commands/keys/format.js';
import type { KeyView } from '../../src/cli/commands/keys/backend.js';

const json = (text: string): Json => JSON.parse(text) as Json;

test('limits: set, read, change, remove; the data plane gets each; absent when none', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  let res = await h.call('POST', '/access-keys', { name: 'plain' });
  assert.equal(res.statusCode, 201, res.body);
  const id = String(json(res.body).id);
  assert.ok(!('deviceLimit' in json(res.body)) && !('speedLimit' in json(res.body)), res.body);

  res = await h.call('PUT', `/access-keys/${id}/device-limit`, { limit: { devices: 3 } });
  assert.equal(res.statusCode, 204, res.body);
  assert.equal(res.body, '');
  res = await h.call('PUT', `/access-keys/${id}/speed-limit`, { limit: { bytesPerSecond: 1_250_000 } });
  assert.equal(res.statusCode, 204, res.body);
  let key = json((await h.call('GET', `/access-keys/${id}`)).body);
  assert.deepEqual(key.deviceLimit, { devices: 3 });
  assert.deepEqual(key.speedLimit, { bytesPerSecond: 1_250_000 });
  // The data plane has them (the enforcer was refreshed by the route).
  assert.deepEqual(
    h.control.keys.find((k) => k.id === id),
    { id, method: key.method, secret: key.password, port: key.port, deviceLimit: 3, speedLimit: 1_250_000 },
  );
  const listed = (json((await h.call('GET', '/access-keys')).body).accessKeys as Json[]).find(
    (k) => k.id === id,
  );
  assert.deepEqual(
    [listed?.deviceLimit, listed?.speedLimit],
    [{ devices: 3 }, { bytesPerSecond: 1_250_000 }],
  );

  res = await h.call('PUT', `/access-keys/${id}/device-limit`, { limit: { devices: 1 } });
  assert.equal(res.statusCode, 204);
  assert.equal(h.control.keys.find((k) => k.id === id)?.deviceLimit, 1);

  for (const path of ['device-limit', 'speed-limit']) {
    res = await h.call('DELETE', `/access-keys/${id}/${path}`);
    assert.equal(res.statusCode, 204, res.body);
  }
  key = json((await h.call('GET', `/access-keys/${id}`)).body);
  assert.ok(!('deviceLimit' in key) && !('speedLimit' in key), JSON.stringify(key));
  const plane = h.control.keys.find((k) => k.id === id)!;
  assert.ok(!('deviceLimit' in plane) && !('speedLimit' in plane), JSON.stringify(plane));

  for (const [method, path] of [
    ['PUT', 'device-limit'],
    ['DELETE', 'speed-limit'],
  ] as const) {
    res = await h.call(
      method,
      `/access-keys/nope/${path}`,
      method === 'PUT' ? { limit: { devices: 2 } } : undefined,
    );
    assert.equal(res.statusCode, 404, res.body);
    assert.equal(json(res.body).code, 'NotFoundError');
  }
});

test('devicesInUse: a device-limited key shows the addresses using it now (GET, listing within its 1 s freshness); others have none', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const limited = String(
    json((await h.call('POST', '/access-keys', { deviceLimit: { devices: 3 } })).body).id,
  );
  const plain = String(json((await h.call('POST', '/access-keys', {})).body).id);
  h.control.devices.set(limited, 2);
  const one = json((await h.call('GET', `/access-keys/${limited}`)).body);
  assert.equal(one.devicesInUse, 2, JSON.stringify(one));
  const listing = async (): Promise<Json[]> =>
    json((await h.call('GET', '/access-keys')).body).accessKeys as Json[];
  let all = await listing();
  assert.equal(all.find((k) => k.id === limited)?.devicesInUse, 2);
  assert.ok(!('devicesInUse' in all.find((k) => k.id === plain)!), 'no device limit: no count');
  // The listing's pages are shared for at most 1 s: a changed count shows after that.
  h.control.devices.set(limited, 1);
  await new Promise((r) => setTimeout(r, 1100));
  all = await listing();
  assert.equal(all.find((k) => k.id === limited)?.devicesInUse, 1);
  // ?fields= (the dashboard's table) may ask for it.
  const res = await h.call('GET', '/access-keys?fields=deviceLimit,devicesInUse');
  assert.equal(res.statusCode, 200, res.body);
  const picked = (json(res.body).accessKeys as Json[]).find((k) => k.id === limited);
  assert.deepEqual(picked, { id: limited, deviceLimit: { devices: 3 }, devicesInUse: 1 });
  // `ladder keys list --api` prints what the API says.
  const table = formatTable(all as unknown as KeyView[]).split('\n');
  const col = table[0]!.indexOf('DEVICE LIMIT');
  const row = table.find((l) => l.startsWith(`${limited} `))!;
  assert.equal(row.slice(col).split(/\s{2,}/)[0], '3 (1 in use)', table.join('\n'));
  h.control.devices.delete(limited); // nobody: 0, not absent
  assert.equal(json((await h.call('GET', `/access-keys/${limited}`)).body).devicesInUse, 0);
});

test('limits: POST, PUT /access-keys/{id} and bulk take both fields', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const limits = { deviceLimit: { devices: 2 }, speedLimit: { bytesPerSecond: 2048 } };
  let res = await h.call('POST', '/access-keys', { name: 'a', ...limits });
  assert.equal(res.statusCode, 201, res.body);
  assert.deepEqual(
    [json(res.body).deviceLimit, json(res.body).speedLimit],
    [limits.deviceLimit, limits.speedLimit],
  );
  res = await h.call('PUT', '/access-keys/chosen', { speedLimit: { bytesPerSecond: 1 << 20 } });
  assert.equal(res.statusCode, 201, res.body);
  assert.deepEqual(json(res.body).speedLimit, { bytesPerSecond: 1 << 20 });
  assert.equal(json(res.body).deviceLimit, undefined);
  res = await h.call('POST', '/access-keys/bulk', { count: 2, deviceLimit: { devices: 5 } });
  assert.equal(res.statusCode, 201, res.body);
  assert.deepEqual(
    (json(res.body).accessKeys as Json[]).map((k) => k.deviceLimit),
    [{ devices: 5 }, { devices: 5 }],
  );
  const stored = await h.store.listKeys();
  assert.deepEqual(
    stored.map((k) => [k.deviceLimit, k.speedLimit]),
    [
      [2, 2048],
      [null, 1 << 20],
      [5, null],
      [5, null],
    ],
  );
});

test('limits: bad bodies get 400 in the error shape naming the field; nothing changes', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const id = String(json((await h.call('POST', '/access-keys', {})).body).id);
  const cases: [string, unknown, string, RegExp][] = [
    ['device-limit', { limit: { devices: 0 } }, 'limit.devices', /at least 1/],
    ['device-limit', { limit: { devices: 10_001 } }, 'limit.devices', /at most 10000/],
    ['device-limit', { limit: { devices: 1.5 } }, 'limit.devices', /whole number/],
    ['device-limit', { limit: { devices: '3' } }, 'limit.devices', /number of devices/],
    ['speed-limit', { limit: { bytesPerSecond: 1023 } }, 'limit.bytesPerSecond', /at least 1024/],
    ['speed-limit', { limit: { bytesPerSecond: 2 ** 40 + 1 } }, 'limit.bytesPerSecond', /at most 2\^40/],
    [
      'speed-limit',
      { limit: { bytesPerSecond: '10Mbit' } },
      'limit.bytesPerSecond',
      /number of bytes per second/,
    ],
  ];
  for (const [path, body, field, why] of cases) {
    const res = await h.call('PUT', `/access-keys/${id}/${path}`, body);
    assert.equal(res.statusCode, 400, `${path} ${JSON.stringify(body)}: ${res.body}`);
    const e = json(res.body);
    assert.equal(e.code, 'InvalidArgumentError');
    assert.equal(e.field, field);
    assert.match(String(e.message), new RegExp(`^Invalid "${field}": `));
    assert.match(String(e.message), why);
  }
  let res = await h.call('PUT', `/access-keys/${id}/speed-limit`, {});
  assert.equal(res.statusCode, 400);
  assert.equal(json(res.body).code, 'MissingParameterError');
  res = await h.call('POST', '/access-keys', { deviceLimit: { devices: -1 } });
  assert.equal(res.statusCode, 400, res.body);
  assert.equal(json(res.body).field, 'deviceLimit.devices');
  res = await h.call('POST', '/access-keys', { speedLimit: { bytesPerSecond: 100 } });
  assert.equal(json(res.body).field, 'speedLimit.bytesPerSecond');
  assert.equal(await h.store.countKeys(), 1, 'no key was created');
  const key = await h.store.getKey(id);
  assert.deepEqual([key?.deviceLimit, key?.speedLimit], [null, null]);
});

test('limits as the config file writes them: a bare device count, a bare byte rate, a rate with a unit; a wrong shape says the expected one', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  let res = await h.call('POST', '/access-keys', { deviceLimit: 3, speedLimit: '10Mbit' });
  assert.equal(res.statusCode, 201, res.body);
  const id = String(json(res.body).id);
  assert.deepEqual(
    [json(res.body).deviceLimit, json(res.body).speedLimit],
    [{ devices: 3 }, { bytesPerSecond: 1_250_000 }],
  );
  res = await h.call('PUT', `/access-keys/${id}/device-limit`, { limit: 2 });
  assert.equal(res.statusCode, 204, res.body);
  res = await h.call('PUT', `/access-keys/${id}/speed-limit`, { limit: 4096 });
  assert.equal(res.statusCode, 204, res.body);
  let key = await h.store.getKey(id);
  assert.deepEqual([key?.deviceLimit, key?.speedLimit], [2, 4096]);
  res = await h.call('PUT', `/access-keys/${id}/speed-limit`, { limit: '2MB/s' });
  assert.equal(res.statusCode, 204, res.body);
  assert.equal((await h.store.getKey(id))?.speedLimit, 2_000_000);
  const cases: [string, unknown, string, RegExp][] = [
    ['device-limit', { limit: 'three' }, 'limit', /expected \{"devices": N\} or a number of devices$/],
    ['device-limit', { limit: 0 }, 'limit.devices', /at least 1/],
    [
      'speed-limit',
      { limit: [1] },
      'limit',
      /expected \{"bytesPerSecond": N\}, a number of bytes per second, or a rate like "10Mbit"$/,
    ],
    ['speed-limit', { limit: '10' }, 'limit', /a rate with a unit.*got "10"/],
    ['speed-limit', { limit: 100 }, 'limit.bytesPerSecond', /at least 1024/],
  ];
  for (const [path, body, field, why] of cases) {
    res = await h.call('PUT', `/access-keys/${id}/${path}`, body);
    assert.equal(res.statusCode, 400, `${path} ${JSON.stringify(body)}: ${res.body}`);
    const e = json(res.body);
    assert.equal(e.field, field, res.body);
    assert.match(String(e.message), why);
    assert.ok(!String(e.message).includes('\n'), 'one line');
  }
  res = await h.call('POST', '/access-keys', { deviceLimit: 'x' });
  assert.equal(json(res.body).field, 'deviceLimit', res.body);
  assert.match(String(json(res.body).message), /or a number of devices/);
  key = await h.store.getKey(id);
  assert.deepEqual([key?.deviceLimit, key?.speedLimit], [2, 2_000_000], 'nothing changed');
});

test('a key with limits still matches the Outline spec (Outline Manager ignores the fields)', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const w = new Walker(h);
  const made = json(
    (
      await w.op('POST', '/access-keys', 201, {
        body: { name: 'x', deviceLimit: { devices: 2 }, speedLimit: { bytesPerSecond: 4096 } },
      })
    ).body,
  );
  assert.deepEqual(made.deviceLimit, { devices: 2 });
  const one = json(
    (await w.op('GET', '/access-keys/{id}', 200, { path: `/access-keys/${String(made.id)}` })).body,
  );
  assert.deepEqual(one.speedLimit, { bytesPerSecond: 4096 });
  assert.equal(one.devicesInUse, 0, 'the extra field is there and the spec still validates');
  const all = json((await w.op('GET', '/access-keys', 200)).body);
  assert.deepEqual((all.accessKeys as Json[])[0]?.deviceLimit, { devices: 2 });
  assert.equal(w.checked, 3);
});

test('the OpenAPI document describes the limit routes and fields', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const doc = json((await h.call('GET', '/openapi.json')).body);
  const paths = doc.paths as Record<string, Record<string, unknown>>;
  for (const p of ['/access-keys/{id}/device-limit', '/access-keys/{id}/speed-limit'])
    assert.deepEqual(Object.keys(paths[p] ?? {}).sort(), ['delete', 'put'], p);
  assert.match(JSON.stringify(doc), /bytesPerSecond/);
});
