import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { buildKeyEntries, isIdentityGroup, KeyRing, RecentKeys, type Candidate } from './keys.js';

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

describe('KeyRing.walk (the one trial order of TCP and UDP)', () => {
  const psk = (): string => randomBytes(16).toString('base64');
  const ipsk = psk();
  const ring = new KeyRing();
  ring.set([
    { id: 's1', method: 'aes-128-gcm', secret: 'one' },
    { id: 'u1', method: '2022-blake3-aes-128-gcm', secret: `${ipsk}:${psk()}` },
    { id: 's2', method: 'aes-256-gcm', secret: 'two' },
    { id: 'single', method: '2022-blake3-aes-128-gcm', secret: psk() },
    { id: 'u2', method: '2022-blake3-aes-128-gcm', secret: `${ipsk}:${psk()}` },
    { id: 's3', method: 'chacha20-ietf-poly1305', secret: 'three' },
  ]);
  const label = (c: Candidate): string => (isIdentityGroup(c) ? `group(${c.table.size})` : c.id);
  const order = (first: Parameters<KeyRing['walk']>[0]): string[] => {
    const seen: string[] = [];
    ring.walk(first, (c, position, recent) => {
      seen.push(`${position}:${label(c)}${recent ? '*' : ''}`);
      return undefined;
    });
    return seen;
  };

  it('identity groups, 2022 single-user keys, then SIP004 keys; positions count a group once', () => {
    assert.deepEqual(order([]), ['1:group(2)', '2:single', '3:s1', '4:s2', '5:s3']);
  });

  it('SIP004 keys used recently from an IP come first, most recent first', () => {
    ring.used('198.51.100.1', 's3');
    ring.used('198.51.100.1', 's2');
    assert.deepEqual(
      ring.recentFor('198.51.100.1').map((k) => k.id),
      ['s2', 's3'],
    );
    assert.deepEqual(order(ring.recentFor('198.51.100.1')), [
      '1:group(2)',
      '2:single',
      '3:s2*',
      '4:s3*',
      '5:s1',
    ]);
    assert.deepEqual(ring.recentFor('203.0.113.9'), []);
  });

  it('a preferred key that is no longer current is skipped; the walk stops at the first value', () => {
    const stale = ring.get('s2');
    assert.ok(stale && stale.edition === 2017);
    const before = ring.get('s1');
    ring.set([
      { id: 's1', method: 'aes-128-gcm', secret: 'one' },
      { id: 's2', method: 'aes-256-gcm', secret: 'changed' },
    ]);
    assert.equal(ring.get('s1'), before, 'an unchanged key keeps its entry');
    assert.deepEqual(order([stale]), ['1:s1', '2:s2']);
    assert.equal(
      ring.walk([], (c) => (isIdentityGroup(c) ? undefined : c.id === 's2' ? c.id : undefined)),
      's2',
    );
    assert.equal(
      ring.walk([], () => undefined),
      undefined,
    );
  });
});

describe('KeyRing.apply (deltas)', () => {
  const k16 = (b: number): string => Buffer.alloc(16, b).toString('base64');
  const ids = (ring: KeyRing): string[] => {
    const out: string[] = [];
    ring.walk([], (c) => void out.push(isIdentityGroup(c) ? `group(${c.table.size})` : c.id));
    return out.sort();
  };

  it('adds, replaces and removes only the keys a delta names; the result walks like set()', () => {
    const ring = new KeyRing();
    ring.set([
      { id: 'a', method: 'aes-128-gcm', secret: 'x' },
      { id: 'b', method: 'chacha20-ietf-poly1305', secret: 'y' },
    ]);
    const a = ring.get('a');
    const gone = ring.apply({
      upsert: [
        { id: 'b', method: 'chacha20-ietf-poly1305', secret: 'changed' },
        { id: 'c', method: 'aes-256-gcm', secret: 'z' },
        { id: 's', method: '2022-blake3-aes-128-gcm', secret: k16(1) },
        { id: 'g1', method: '2022-blake3-aes-128-gcm', secret: `${k16(9)}:${k16(2)}` },
        { id: 'g2', method: '2022-blake3-aes-128-gcm', secret: `${k16(9)}:${k16(3)}` },
      ],
      remove: ['missing'],
    });
    assert.deepEqual(gone, ['b'], 'a changed key is replaced (its connections are closed)');
    assert.equal(ring.get('a'), a, 'an untouched key keeps its entry');
    assert.equal(ring.size, 6);
    const same = new KeyRing();
    same.set([
      { id: 'a', method: 'aes-128-gcm', secret: 'x' },
      { id: 'b', method: 'chacha20-ietf-poly1305', secret: 'changed' },
      { id: 'c', method: 'aes-256-gcm', secret: 'z' },
      { id: 's', method: '2022-blake3-aes-128-gcm', secret: k16(1) },
      { id: 'g1', method: '2022-blake3-aes-128-gcm', secret: `${k16(9)}:${k16(2)}` },
      { id: 'g2', method: '2022-blake3-aes-128-gcm', secret: `${k16(9)}:${k16(3)}` },
    ]);
    assert.deepEqual(ids(ring), ids(same));
    assert.deepEqual(ring.apply({ upsert: [], remove: ['a', 'g1', 's'] }).sort(), ['a', 'g1', 's']);
    assert.equal(ring.get('a'), undefined);
    assert.equal(ring.size, 3);
    assert.deepEqual(ids(ring), ['b', 'c', 'group(1)']);
  });

  it('refuses a 2022 user key another key already owns, and frees it when the owner goes', () => {
    const ring = new KeyRing();
    ring.apply({ upsert: [{ id: 'u1', method: '2022-blake3-aes-128-gcm', secret: k16(4) }], remove: [] });
    ring.apply({ upsert: [{ id: 'u2', method: '2022-blake3-aes-128-gcm', secret: k16(4) }], remove: [] });
    assert.equal(ring.get('u2'), undefined);
    assert.match(ring.rejected[0]!.reason, /same 2022 user key as key "u1"/);
    ring.apply({ upsert: [], remove: ['u1'] });
    ring.apply({ upsert: [{ id: 'u2', method: '2022-blake3-aes-128-gcm', secret: k16(4) }], remove: [] });
    assert.ok(ring.get('u2'));
  });
});
