import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import { toSocksAddress } from '../socks5/address.js';
import { IdentityTable } from './identity.js';
import { AEAD_2022_METHODS, AesBlock, decodePsk, getAead2022Method } from './methods2022.js';
import {
  openClientPacket2022,
  openServerPacket2022,
  sealClientPacket2022,
  sealServerPacket2022,
  SubkeyCache,
  Udp2022ClientSession,
  Udp2022ServerSession,
} from './udp2022.js';
import { PacketWindow } from './udpWindow.js';

const NOW = 1_700_000_000_000;
const addr = toSocksAddress('8.8.8.8', 53);

function code(c: string) {
  return (err: unknown) => err instanceof ProtocolError && err.code === c;
}

for (const method of Object.values(AEAD_2022_METHODS)) {
  describe(`SIP022 UDP ${method.name}`, () => {
    const key = Buffer.alloc(method.keySize, 0x42);
    const csid = Buffer.from('0102030405060708', 'hex');
    const ssid = Buffer.from('a1a2a3a4a5a6a7a8', 'hex');

    it('round-trips client and server packets (DNS-sized, 1400 bytes, empty with padding)', () => {
      for (const size of [0, 40, 1400]) {
        const payload = Buffer.alloc(size, 7);
        const c = sealClientPacket2022(method, key, {
          sessionId: csid,
          packetId: BigInt(size),
          address: addr,
          payload,
          nowMs: NOW,
        });
        const got = openClientPacket2022(method, c, NOW, { key });
        assert.deepEqual(got.sessionId, csid);
        assert.equal(got.packetId, BigInt(size));
        assert.deepEqual(got.address, addr);
        assert.deepEqual(got.payload, payload);
        assert.equal(got.timestamp, NOW / 1000);
        if (size === 0) assert.ok(got.paddingLength >= 1 && got.paddingLength <= 900);
        else assert.equal(got.paddingLength, 0);

        const s = sealServerPacket2022(method, key, {
          sessionId: ssid,
          packetId: 9n,
          clientSessionId: csid,
          address: addr,
          payload,
          nowMs: NOW,
        });
        const back = openServerPacket2022(method, key, s, NOW);
        assert.deepEqual(back.sessionId, ssid);
        assert.deepEqual(back.clientSessionId, csid);
        assert.equal(back.packetId, 9n);
        assert.deepEqual(back.payload, payload);
      }
    });

    it('rejects a flipped bit anywhere', () => {
      const c = sealClientPacket2022(method, key, {
        sessionId: csid,
        packetId: 1n,
        address: addr,
        payload: Buffer.from('q'),
        nowMs: NOW,
      });
      for (let i = 0; i < c.length; i++) {
        const bad = Buffer.from(c);
        bad[i]! ^= 0x04;
        assert.throws(() => openClientPacket2022(method, bad, NOW, { key }), code('ERR_CIPHER'), `byte ${i}`);
      }
    });

    it('rejects wrong keys, short packets, and the wrong direction', () => {
      const c = sealClientPacket2022(method, key, {
        sessionId: csid,
        packetId: 1n,
        address: addr,
        payload: Buffer.from('q'),
        nowMs: NOW,
      });
      assert.throws(
        () => openClientPacket2022(method, c, NOW, { key: Buffer.alloc(method.keySize, 1) }),
        code('ERR_CIPHER'),
      );
      assert.throws(
        () => openClientPacket2022(method, c.subarray(0, 20), NOW, { key }),
        code('ERR_SHORT_HEADER'),
      );
      // a client packet opened as a server packet: the type byte (and layout) is wrong
      assert.throws(() => openServerPacket2022(method, key, c, NOW), code('ERR_HEADER'));
      const s = sealServerPacket2022(method, key, {
        sessionId: ssid,
        packetId: 1n,
        clientSessionId: csid,
        address: addr,
        payload: Buffer.from('q'),
        nowMs: NOW,
      });
      assert.throws(() => openClientPacket2022(method, s, NOW, { key }), code('ERR_HEADER'));
    });

    it('rejects timestamps 31 s off, accepts 30 s', () => {
      for (const [off, ok] of [
        [31_000, false],
        [-31_000, false],
        [30_000, true],
        [-30_000, true],
      ] as const) {
        const c = sealClientPacket2022(method, key, {
          sessionId: csid,
          packetId: 1n,
          address: addr,
          payload: Buffer.from('q'),
          nowMs: NOW + off,
        });
        if (ok) assert.equal(openClientPacket2022(method, c, NOW, { key }).payload.toString(), 'q');
        else assert.throws(() => openClientPacket2022(method, c, NOW, { key }), code('ERR_TIMESTAMP'));
        const s = sealServerPacket2022(method, key, {
          sessionId: ssid,
          packetId: 1n,
          clientSessionId: csid,
          address: addr,
          payload: Buffer.from('q'),
          nowMs: NOW + off,
        });
        if (ok) assert.equal(openServerPacket2022(method, key, s, NOW).payload.toString(), 'q');
        else assert.throws(() => openServerPacket2022(method, key, s, NOW), code('ERR_TIMESTAMP'));
      }
    });

    it('a replayed packet passes open() but the per-session window refuses it', () => {
      const w = new PacketWindow();
      const pkts = [0n, 1n, 2n].map((id) =>
        sealClientPacket2022(method, key, {
          sessionId: csid,
          packetId: id,
          address: addr,
          payload: Buffer.from('z'),
          nowMs: NOW,
        }),
      );
      for (const p of pkts) assert.ok(w.accept(openClientPacket2022(method, p, NOW, { key }).packetId));
      for (const p of pkts) assert.ok(!w.accept(openClientPacket2022(method, p, NOW, { key }).packetId));
    });

    it('property: any payload and padding round-trip, with and without a subkey cache', () => {
      const cache = new SubkeyCache(4);
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 1500 }),
          fc.integer({ min: 0, max: 900 }),
          fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          fc.uint8Array({ minLength: 8, maxLength: 8 }),
          (payload, padLen, id, sid) => {
            const padding = Buffer.alloc(padLen);
            const c = sealClientPacket2022(method, key, {
              sessionId: sid,
              packetId: id,
              address: addr,
              payload,
              padding,
              nowMs: NOW,
              cache,
            });
            const got = openClientPacket2022(method, c, NOW, { key, cache });
            assert.deepEqual(got.payload, Buffer.from(payload));
            assert.equal(got.packetId, id);
            assert.equal(got.paddingLength, padLen);
            assert.deepEqual(openClientPacket2022(method, c, NOW, { key }).payload, Buffer.from(payload));
          },
        ),
        { numRuns: 40 },
      );
      assert.ok(cache.size <= 4);
    });
  });
}

describe('SIP023 identity headers over UDP', () => {
  for (const method of [
    AEAD_2022_METHODS['2022-blake3-aes-128-gcm'],
    AEAD_2022_METHODS['2022-blake3-aes-256-gcm'],
  ]) {
    it(`${method.name}: finds the user, replies under the user key, refuses strangers`, () => {
      const ipsk = Buffer.alloc(method.keySize, 0xee);
      const table = new IdentityTable<number>(method, ipsk);
      const users = Array.from({ length: 20 }, (_, i) => Buffer.alloc(method.keySize, i + 1));
      users.forEach((u, i) => table.set(u, i));
      const csid = Buffer.from('1111111111111111', 'hex');
      for (const [i, u] of users.entries()) {
        const c = sealClientPacket2022(method, u, {
          sessionId: csid,
          packetId: BigInt(i),
          address: addr,
          payload: Buffer.from(`u${i}`),
          nowMs: NOW,
          identityKeys: [ipsk],
        });
        assert.equal(c.length, 16 + 16 + 1 + 8 + 2 + 7 + 2 + (i > 9 ? 1 : 0) + 16);
        const got = openClientPacket2022(method, c, NOW, { identity: table });
        assert.equal(got.user, i);
        assert.deepEqual(got.key, u);
        assert.equal(got.payload.toString(), `u${i}`);
        const reply = sealServerPacket2022(method, got.key, {
          sessionId: Buffer.alloc(8, 9),
          packetId: 0n,
          clientSessionId: csid,
          address: addr,
          payload: Buffer.from('r'),
          nowMs: NOW,
        });
        assert.equal(openServerPacket2022(method, u, reply, NOW).payload.toString(), 'r');
      }
      const stranger = sealClientPacket2022(method, Buffer.alloc(method.keySize, 0x77), {
        sessionId: csid,
        packetId: 0n,
        address: addr,
        payload: Buffer.from('x'),
        nowMs: NOW,
        identityKeys: [ipsk],
      });
      assert.throws(
        () => openClientPacket2022(method, stranger, NOW, { identity: table }),
        code('ERR_CIPHER'),
      );
      // without an identity header, a multi-user port reads the body as an identity header
      const plain = sealClientPacket2022(method, users[0]!, {
        sessionId: csid,
        packetId: 0n,
        address: addr,
        payload: Buffer.from('x'),
        nowMs: NOW,
      });
      assert.throws(() => openClientPacket2022(method, plain, NOW, { identity: table }), code('ERR_CIPHER'));
    });
  }
});

// ---- Known-answer vectors (test/vectors/sip022.json; provenance in docs/sip022.md) ----

interface UdpVector {
  name: string;
  method: string;
  direction: 'client' | 'server';
  psk: string;
  identityKeys: string[];
  sessionId: string;
  packetId: string;
  timestamp: number;
  clientSessionId?: string;
  address: { host: string; port: number };
  padding: string;
  payload: string;
  nonce?: string;
  wire: string;
}

const UDP_VECTORS = (
  JSON.parse(readFileSync(new URL('../../../test/vectors/sip022.json', import.meta.url), 'utf8')) as {
    udp: UdpVector[];
  }
).udp;

describe('SIP022 UDP known-answer vectors', () => {
  it('cover all three methods, both directions, and an identity header', () => {
    for (const m of Object.values(AEAD_2022_METHODS)) {
      assert.ok(UDP_VECTORS.some((v) => v.method === m.name && v.direction === 'client'));
      assert.ok(UDP_VECTORS.some((v) => v.method === m.name && v.direction === 'server'));
    }
    assert.ok(UDP_VECTORS.some((v) => v.identityKeys.length === 1));
    assert.ok(UDP_VECTORS.some((v) => v.identityKeys.length === 2));
  });

  for (const v of UDP_VECTORS) {
    it(v.name, () => {
      const method = getAead2022Method(v.method);
      const psk = decodePsk(method, v.psk);
      const ipsks = v.identityKeys.map((k) => decodePsk(method, k));
      const nowMs = v.timestamp * 1000 + 999;
      const base = {
        sessionId: Buffer.from(v.sessionId, 'hex'),
        packetId: BigInt(v.packetId),
        address: toSocksAddress(v.address.host, v.address.port),
        payload: Buffer.from(v.payload, 'hex'),
        padding: Buffer.from(v.padding, 'hex'),
        nowMs,
        ...(v.nonce ? { nonce: Buffer.from(v.nonce, 'hex') } : {}),
      };
      let got;
      if (v.direction === 'client') {
        assert.equal(
          sealClientPacket2022(method, psk, { ...base, identityKeys: ipsks }).toString('hex'),
          v.wire,
        );
        if (ipsks.length > 0) {
          // Relays (SIP023): each layer decrypts the separate header with its iPSK, finds the next
          // key by the identity header, and re-encrypts the separate header with that key in
          // place of the identity header it consumed.
          let wire = Buffer.from(v.wire, 'hex');
          for (let layer = 0; layer < ipsks.length - 1; layer++) {
            const relay = new IdentityTable<string>(method, ipsks[layer]!);
            relay.set(ipsks[layer + 1]!, `layer ${layer + 1}`);
            const sep = new AesBlock(method, ipsks[layer]!).decrypt(wire.subarray(0, 16));
            const next = relay.resolveUdp(sep, wire.subarray(16, 32));
            assert.equal(next?.user, `layer ${layer + 1}`);
            wire = Buffer.concat([new AesBlock(method, next.key).encrypt(sep), wire.subarray(32)]);
          }
          const table = new IdentityTable<string>(method, ipsks[ipsks.length - 1]!);
          table.set(psk, 'u');
          got = openClientPacket2022(method, wire, nowMs, { identity: table });
          assert.equal(got.user, 'u');
        } else {
          got = openClientPacket2022(method, Buffer.from(v.wire, 'hex'), nowMs, { key: psk });
        }
        assert.deepEqual(got.key, psk);
      } else {
        const clientSessionId = Buffer.from(v.clientSessionId!, 'hex');
        assert.equal(sealServerPacket2022(method, psk, { ...base, clientSessionId }).toString('hex'), v.wire);
        got = openServerPacket2022(method, psk, Buffer.from(v.wire, 'hex'), nowMs);
        assert.deepEqual(got.clientSessionId, clientSessionId);
      }
      assert.deepEqual(got.sessionId, base.sessionId);
      assert.equal(got.packetId, base.packetId);
      assert.equal(got.timestamp, v.timestamp);
      assert.deepEqual(got.address, base.address);
      assert.equal(got.paddingLength, base.padding.length);
      assert.deepEqual(got.payload, base.payload);
      // the same bytes 31 s later are refused
      const wire = Buffer.from(v.wire, 'hex');
      const table = ipsks.length === 1 ? new IdentityTable<string>(method, ipsks[0]!) : undefined;
      table?.set(psk, 'u');
      const late = () =>
        v.direction === 'server'
          ? openServerPacket2022(method, psk, wire, nowMs + 31_000)
          : openClientPacket2022(method, wire, nowMs + 31_000, table ? { identity: table } : { key: psk });
      if (ipsks.length <= 1) assert.throws(late, code('ERR_TIMESTAMP'));
    });
  }
});

describe('XChaCha20-Poly1305 (noble HChaCha20 + native ChaCha20-Poly1305)', () => {
  it("property: agrees with @noble/ciphers' xchacha20poly1305 both ways", () => {
    const method = AEAD_2022_METHODS['2022-blake3-chacha20-poly1305'];
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 24, maxLength: 24 }),
        fc.uint8Array({ maxLength: 600 }),
        (key, nonce, payload) => {
          const sessionId = Buffer.alloc(8, 1);
          const wire = sealClientPacket2022(method, key, {
            sessionId,
            packetId: 5n,
            address: addr,
            payload,
            nonce,
            nowMs: NOW,
          });
          const plain = Buffer.from(xchacha20poly1305(key, nonce).decrypt(wire.subarray(24)));
          assert.deepEqual(plain.subarray(0, 8), sessionId);
          assert.deepEqual(plain.subarray(plain.length - payload.length), Buffer.from(payload));
          const resealed = Buffer.concat([Buffer.from(nonce), xchacha20poly1305(key, nonce).encrypt(plain)]);
          assert.deepEqual(resealed, wire);
          assert.deepEqual(
            openClientPacket2022(method, resealed, NOW, { key }).payload,
            Buffer.from(payload),
          );
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('Udp2022ClientSession / Udp2022ServerSession', () => {
  for (const method of Object.values(AEAD_2022_METHODS)) {
    it(`${method.name}: a full exchange, replays refused on both sides`, () => {
      const key = Buffer.alloc(method.keySize, 0x31);
      const client = new Udp2022ClientSession(method, key);
      const nat = new Map<string, Udp2022ServerSession>();
      const serverReceive = (pkt: Buffer, now: number) => {
        const opened = openClientPacket2022(method, pkt, now, { key });
        const k = opened.sessionId.toString('hex');
        let s = nat.get(k);
        if (!s) nat.set(k, (s = new Udp2022ServerSession(method, opened)));
        return s.accept(opened.packetId) ? { s, opened } : undefined;
      };
      const sent: Buffer[] = [];
      for (let i = 0; i < 5; i++) {
        const pkt = client.seal(addr, Buffer.from(`q${i}`), NOW);
        sent.push(pkt);
        const r = serverReceive(pkt, NOW);
        assert.ok(r);
        assert.equal(r.opened.payload.toString(), `q${i}`);
        assert.notDeepEqual(r.s.sessionId, client.sessionId);
        const reply = r.s.seal(addr, Buffer.from(`a${i}`), NOW);
        assert.equal(client.open(reply, NOW).payload.toString(), `a${i}`);
        assert.throws(() => client.open(reply, NOW), code('ERR_REPLAY'));
      }
      assert.equal(client.packetId, 5n);
      assert.equal(nat.size, 1);
      for (const pkt of sent) assert.equal(serverReceive(pkt, NOW), undefined);

      // a reply for another client session is refused
      const other = new Udp2022ServerSession(method, {
        sessionId: Buffer.alloc(8, 0xee),
        key,
        user: undefined,
      });
      assert.throws(() => client.open(other.seal(addr, Buffer.from('x'), NOW), NOW), code('ERR_HEADER'));
    });
  }

  it('the client accepts a few server sessions (server restart) and forgets idle ones after 60 s', () => {
    const method = AEAD_2022_METHODS['2022-blake3-aes-128-gcm'];
    const key = Buffer.alloc(16, 9);
    const client = new Udp2022ClientSession(method, key);
    const opened = { sessionId: client.sessionId, key, user: undefined };
    const servers = Array.from({ length: 5 }, () => new Udp2022ServerSession(method, opened));
    for (const s of servers.slice(0, 4)) client.open(s.seal(addr, Buffer.from('x'), NOW), NOW);
    assert.equal(client.serverSessions, 4);
    assert.throws(() => client.open(servers[4]!.seal(addr, Buffer.from('x'), NOW), NOW), code('ERR_REPLAY'));
    assert.equal(
      client.open(servers[4]!.seal(addr, Buffer.from('y'), NOW + 60_000), NOW + 60_000).payload.toString(),
      'y',
    );
    assert.equal(client.serverSessions, 1);
  });

  it('identity keys flow through the client session, and the server session replies with the user key', () => {
    const method = AEAD_2022_METHODS['2022-blake3-aes-256-gcm'];
    const ipsk = Buffer.alloc(32, 0xaa);
    const upsk = Buffer.alloc(32, 0xbb);
    const table = new IdentityTable<string>(method, ipsk);
    table.set(upsk, 'alice');
    const client = new Udp2022ClientSession(method, upsk, { identityKeys: [ipsk] });
    const opened = openClientPacket2022(method, client.seal(addr, Buffer.from('hi'), NOW), NOW, {
      identity: table,
    });
    const s = new Udp2022ServerSession(method, opened);
    assert.equal(s.user, 'alice');
    assert.ok(s.accept(opened.packetId));
    assert.equal(client.open(s.seal(addr, Buffer.from('yo'), NOW), NOW).payload.toString(), 'yo');
  });
});

describe('garbage never crashes the 2022 UDP codecs', () => {
  it('property: random datagrams give a ProtocolError', () => {
    for (const method of Object.values(AEAD_2022_METHODS)) {
      const key = Buffer.alloc(method.keySize, 1);
      const table = method.supportsIdentity
        ? new IdentityTable<number>(method, Buffer.alloc(method.keySize, 2))
        : undefined;
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
          for (const f of [
            () => openClientPacket2022(method, junk, NOW, { key }),
            () => openServerPacket2022(method, key, junk, NOW),
            ...(table ? [() => openClientPacket2022(method, junk, NOW, { identity: table })] : []),
          ]) {
            assert.throws(f, (e: unknown) => e instanceof ProtocolError);
          }
        }),
        { numRuns: 100 },
      );
    }
  });
});

describe('SubkeyCache', () => {
  it('only packets that authenticate add to the cache (garbage and other keys cannot evict sessions)', () => {
    const method = AEAD_2022_METHODS['2022-blake3-aes-128-gcm'];
    const key = Buffer.alloc(16, 1);
    const other = Buffer.alloc(16, 2);
    const cache = new SubkeyCache(2);
    const pkt = (k: Buffer, sid: number) =>
      sealClientPacket2022(method, k, {
        sessionId: Buffer.alloc(8, sid),
        packetId: 0n,
        address: addr,
        payload: Buffer.from('x'),
        nowMs: NOW,
      });
    openClientPacket2022(method, pkt(key, 1), NOW, { key, cache });
    openClientPacket2022(method, pkt(key, 2), NOW, { key, cache });
    assert.equal(cache.size, 2);
    for (let i = 3; i < 50; i++) {
      assert.throws(
        () => openClientPacket2022(method, pkt(other, i), NOW, { key, cache }),
        code('ERR_CIPHER'),
      );
      assert.throws(
        () => openClientPacket2022(method, Buffer.alloc(60, i), NOW, { key, cache }),
        code('ERR_CIPHER'),
      );
    }
    assert.ok(cache.peek(key, Buffer.alloc(8, 1)));
    assert.ok(cache.peek(key, Buffer.alloc(8, 2)));
    openClientPacket2022(method, pkt(key, 3), NOW, { key, cache });
    assert.equal(cache.size, 2);
    assert.equal(cache.peek(key, Buffer.alloc(8, 1)), undefined); // the oldest went
  });
});

describe('misuse of the 2022 UDP codecs', () => {
  it('openClientPacket2022 with neither key nor identity throws ProtocolError ERR_USAGE', () => {
    const method = AEAD_2022_METHODS['2022-blake3-aes-256-gcm'];
    assert.throws(() => openClientPacket2022(method, Buffer.alloc(64), NOW, {}), code('ERR_USAGE'));
  });
});
