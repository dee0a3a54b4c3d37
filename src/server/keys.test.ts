import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildKeyEntries, RecentKeys } from './keys.js';

describe('buildKeyEntries', () => {
  it('derives master keys and probe lengths per method', () => {
    const { entries: m } = buildKeyEntries(
      [
        { id: 'a', method: 'aes-128-gcm', secret: 'x' },
        { id: 'b', method: 'aes-256-gcm', secret: 'x' },
        { id: 'c', method: 'chacha20-ietf-poly1305', secret: 'x' },
      ],
      new Map(),
    );
    assert.equal(m.get('a')!.probeLength, 16 + 18);
    assert.equal(m.get('a')!.masterKey.length, 16);
    assert.equal(m.get('b')!.probeLength, 32 + 18);
    assert.equal(m.get('c')!.masterKey.length, 32);
  });

  it('keeps unchanged entries (identity) and replaces changed ones', () => {
    const first = buildKeyEntries(
      [
        { id: 'a', method: 'aes-128-gcm', secret: 'x' },
        { id: 'b', method: 'aes-128-gcm', secret: 'y' },
      ],
      new Map(),
    ).entries;
    const second = buildKeyEntries(
      [
        { id: 'a', method: 'aes-128-gcm', secret: 'x' },
        { id: 'b', method: 'aes-128-gcm', secret: 'z' },
      ],
      first,
    ).entries;
    assert.equal(second.get('a'), first.get('a'));
    assert.notEqual(second.get('b'), first.get('b'));
  });

  it('skips stream ciphers, unknown methods and repeated ids, reporting why without the secret', () => {
    const { entries, rejected } = buildKeyEntries(
      [
        { id: 'a', method: 'rc4-md5', secret: 'sekrit' },
        { id: 'b', method: 'aes-128-gcm', secret: 'x' },
        { id: 'b', method: 'aes-128-gcm', secret: 'y' },
        { id: 'c', method: '2022-blake3-aes-128-gcm', secret: 'sekrit' },
      ],
      new Map(),
    );
    assert.deepEqual([...entries.keys()], ['b']);
    assert.deepEqual(
      rejected.map((r) => r.id),
      ['a', 'b', 'c'],
    );
    assert.match(rejected[0]!.reason, /stream cipher/);
    assert.match(rejected[1]!.reason, /duplicate/);
    assert.ok(rejected.every((r) => !r.reason.includes('sekrit')));
  });
});

describe('RecentKeys', () => {
  it('most recent first, bounded per IP and in IPs', () => {
    const r = new RecentKeys(2, 3);
    r.use('ip1', 'a');
    r.use('ip1', 'b');
    r.use('ip1', 'a');
    assert.deepEqual(r.get('ip1'), ['a', 'b']);
    r.use('ip1', 'c');
    r.use('ip1', 'd');
    assert.deepEqual(r.get('ip1'), ['d', 'c', 'a']);
    r.use('ip2', 'x');
    r.use('ip3', 'y'); // evicts ip1, the least recently active IP
    assert.deepEqual(r.get('ip1'), []);
    assert.equal(r.size, 2);
  });
});
