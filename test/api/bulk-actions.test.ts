/**
 * POST /access-keys/bulk-action (Ladder extension): enable, disable, extend and delete many keys
 * in one store transaction with one enforcer refresh. Each action changes exactly the named keys
 * (the others are the control); an unknown id is a 404 naming it and changes nothing (all or
 * nothing); bad bodies are one-line 400s naming the field.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/shared/clock.js';
import { harness, tempDir, type Harness } from './helpers.js';

const DAY = 86_400_000;
type Key = { id: string; enabled: boolean; expiresAt?: string };

async function keys(h: Harness): Promise<Map<string, Key>> {
  const r = await h.call('GET', '/access-keys');
  return new Map((JSON.parse(r.body) as { accessKeys: Key[] }).accessKeys.map((k) => [k.id, k]));
}

async function setup(t: TestContext) {
  const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
  const h = await harness(tempDir(t), { clock });
  t.after(() => h.close());
  const r = await h.call('POST', '/access-keys/bulk', { count: 6, name: 'b' });
  assert.equal(r.statusCode, 201, r.body);
  const ids = [...(await keys(h)).keys()];
  assert.equal(ids.length, 6);
  return { h, clock, ids };
}

test('disable, enable and extend change exactly the named keys; the data plane follows', async (t) => {
  const { h, ids } = await setup(t);
  const [a, b, c, d] = ids as [string, string, string, string];
  let r = await h.call('POST', '/access-keys/bulk-action', { action: 'disable', ids: [a, b, c, b] });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), { changed: 3 });
  let now = await keys(h);
  assert.deepEqual(
    ids.filter((id) => !now.get(id)!.enabled),
    [a, b, c],
  );
  assert.deepEqual(
    h.control.ids(),
    ids.filter((id) => ![a, b, c].includes(id)).sort(),
    'one refresh: served keys',
  );

  r = await h.call('POST', '/access-keys/bulk-action', { action: 'enable', ids: [b] });
  assert.equal(r.statusCode, 200, r.body);
  now = await keys(h);
  assert.deepEqual(
    ids.filter((id) => !now.get(id)!.enabled),
    [a, c],
  );

  // d expires in 5 days: +10 from then; a has none: +10 from now. The rest keep theirs (none).
  assert.equal(
    (await h.call('PUT', `/access-keys/${d}/expiry`, { expiresAt: '2030-01-06T00:00:00Z' })).statusCode,
    204,
  );
  r = await h.call('POST', '/access-keys/bulk-action', { action: 'extend', ids: [a, d], days: 10 });
  assert.equal(r.statusCode, 200, r.body);
  now = await keys(h);
  assert.equal(now.get(a)!.expiresAt, '2030-01-11T00:00:00.000Z');
  assert.equal(now.get(d)!.expiresAt, '2030-01-16T00:00:00.000Z');
  assert.deepEqual(
    ids.filter((id) => now.get(id)!.expiresAt !== undefined),
    [a, d],
  );
  r = await h.call('POST', '/access-keys/bulk-action', { action: 'extend', ids: [a], days: 0.5 });
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(Date.parse((await keys(h)).get(a)!.expiresAt!), Date.parse('2030-01-11T00:00:00Z') + DAY / 2);
});

test('delete removes exactly the named keys and closes their connections', async (t) => {
  const { h, ids } = await setup(t);
  const r = await h.call('POST', '/access-keys/bulk-action', { action: 'delete', ids: [ids[1], ids[4]] });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual([...(await keys(h)).keys()], [ids[0], ids[2], ids[3], ids[5]]);
  assert.deepEqual([...new Set(h.control.closed)].sort(), [ids[1], ids[4]].sort());
  assert.deepEqual(h.control.ids(), [ids[0], ids[2], ids[3], ids[5]].sort());
});

test('an unknown id is a 404 naming it, and nothing changes (all or nothing)', async (t) => {
  const { h, ids } = await setup(t);
  const before = JSON.stringify([...(await keys(h)).values()]);
  for (const action of ['disable', 'delete', 'extend'] as const) {
    const r = await h.call('POST', '/access-keys/bulk-action', {
      action,
      ids: [ids[0], 'nope', ids[1], 'gone'],
      ...(action === 'extend' ? { days: 3 } : {}),
    });
    assert.equal(r.statusCode, 404, `${action}: ${r.body}`);
    const body = JSON.parse(r.body) as { code: string; message: string; field: string };
    assert.equal(body.code, 'NotFoundError');
    assert.equal(body.field, 'ids');
    assert.match(body.message, /"nope", "gone"/);
    assert.doesNotMatch(body.message, new RegExp(`"${ids[0]}"`));
    assert.equal(JSON.stringify([...(await keys(h)).values()]), before, `${action}: nothing changed`);
  }
  assert.deepEqual(h.control.closed, []);
  // Control: the same request without the unknown ids does change the keys.
  const ok = await h.call('POST', '/access-keys/bulk-action', { action: 'disable', ids: [ids[0], ids[1]] });
  assert.equal(ok.statusCode, 200);
  assert.notEqual(JSON.stringify([...(await keys(h)).values()]), before);
});

test('bad bodies are one-line 400s naming the field', async (t) => {
  const { h, ids } = await setup(t);
  const cases: [unknown, string][] = [
    [{ action: 'explode', ids }, 'action'],
    [{ action: 'enable', ids: [] }, 'ids'],
    [{ action: 'enable' }, 'ids'],
    [{ action: 'enable', ids: [''] }, 'ids.0'],
    [{ action: 'enable', ids: ['x'.repeat(129)] }, 'ids.0'],
    [{ action: 'enable', ids: Array.from({ length: 10_001 }, (_, i) => `k${i}`) }, 'ids'],
    [{ action: 'extend', ids }, 'days'],
    [{ action: 'extend', ids, days: -1 }, 'days'],
    [{ action: 'extend', ids, days: 'ten' }, 'days'],
    [{ action: 'enable', ids, days: 3 }, 'days'],
  ];
  const before = JSON.stringify([...(await keys(h)).values()]);
  for (const [body, field] of cases) {
    const r = await h.call('POST', '/access-keys/bulk-action', body);
    assert.equal(r.statusCode, 400, `${field}: ${r.body}`);
    const e = JSON.parse(r.body) as { field: string; message: string };
    assert.equal(e.field, field, r.body);
    assert.doesNotMatch(e.message, /\n/);
  }
  assert.equal(JSON.stringify([...(await keys(h)).values()]), before);
});
