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
    const a = m.get('a')!;
    const c = m.get('c')!;
    assert.ok(a.edition === 2017 && c.edition === 2017);
    assert.equal(a.masterKey.length, 16);
    assert.equal(m.get('b')!.probeLength, 32 + 18);
    assert.equal(c.masterKey.length, 32);
  });

  it('accepts 2022 keys: single-user and iPSK:uPSK, probe length with the identity header', () => {
    const k16 = (b: number): string => Buffer.alloc(16, b).toString('base64');
    const k32 = (b: number): string => Buffer.alloc(32, b).toString('base64');
    const { entries: m, rejected } = buildKeyEntries(
      [
        { id: 's', method: '2022-blake3-aes-128-gcm', secret: k16(1) },
        { id: 'u1', method: '2022-blake3-aes-256-gcm', secret: `${k32(9)}:${k32(2)}` },
        { id: 'u2', method: '2022-blake3-aes-256-gcm', secret: `${k32(9)}:${k32(2)}` },
        { id: 'ch', method: '2022-blake3-chacha20-poly1305', secret: `${k32(9)}:${k32(3)}` },
        { id: 'short', method: '2022-blake3-aes-256-gcm', secret: k16(4) },
        { id: 'hop', method: '2022-blake3-aes-128-gcm', secret: `${k16(5)}:${k16(6)}:${k16(7)}` },
      ],
      new Map(),
    );
    assert.deepEqual([...m.keys()], ['s', 'u1']);
    const s = m.get('s')!;
    const u = m.get('u1')!;
    assert.ok(s.edition === 2022 && u.edition === 2022);
    assert.equal(s.identityKey, undefined);
    assert.equal(s.probeLength, 16 + 11 + 16);
    assert.deepEqual(u.identityKey, Buffer.alloc(32, 9));
    assert.equal(u.probeLength, 32 + 16 + 11 + 16);
    assert.deepEqual(
      rejected.map((r) => r.id),
      ['u2', 'ch', 'short', 'hop'],
    );
    assert.match(rejected[0]!.reason, /same 2022 user key/);
    assert.match(rejected[1]!.reason, /AES method/);
    assert.match(rejected[2]!.reason, /exactly 32/);
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
