import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import { toSocksAddress } from '../socks5/address.js';
import { evpBytesToKey } from './kdf.js';
import { AEAD_METHODS, getAeadMethod } from './methods.js';
import { decodeUdp2017, encodeUdp2017, openUdpPacket, sealUdpPacket } from './udp.js';

function code(c: string) {
  return (err: unknown) => err instanceof ProtocolError && err.code === c;
}

for (const method of Object.values(AEAD_METHODS)) {
  describe(`SIP004 UDP ${method.name}`, () => {
    const key = evpBytesToKey('test-password', method.keySize);
    const addr = toSocksAddress('10.1.2.3', 53);

    it('round-trips address and payload, DNS-sized and 1400 bytes', () => {
      for (const size of [0, 40, 512, 1400]) {
        const payload = Buffer.alloc(size, size & 0xff);
        const wire = encodeUdp2017(method, key, addr, payload);
        assert.equal(wire.length, method.saltSize + 7 + size + 16);
        const got = decodeUdp2017(method, key, wire);
        assert.deepEqual(got.address, addr);
        assert.deepEqual(got.payload, payload);
      }
    });

    it('uses a fresh salt per datagram and nonce zero', () => {
      const a = sealUdpPacket(method, key, Buffer.from('x'));
      const b = sealUdpPacket(method, key, Buffer.from('x'));
      assert.notDeepEqual(a.subarray(0, method.saltSize), b.subarray(0, method.saltSize));
      const salt = Buffer.alloc(method.saltSize, 1);
      assert.deepEqual(
        sealUdpPacket(method, key, Buffer.from('x'), salt),
        sealUdpPacket(method, key, Buffer.from('x'), salt),
      );
    });

    it('rejects tampering, wrong keys, short datagrams and truncated addresses', () => {
      const wire = encodeUdp2017(method, key, addr, Buffer.from('hello'));
      for (let i = 0; i < wire.length; i++) {
        const bad = Buffer.from(wire);
        bad[i]! ^= 0x80;
        assert.throws(() => decodeUdp2017(method, key, bad), code('ERR_CIPHER'));
      }
      assert.throws(
        () => decodeUdp2017(method, evpBytesToKey('other', method.keySize), wire),
        code('ERR_CIPHER'),
      );
      assert.throws(
        () => openUdpPacket(method, key, wire.subarray(0, method.saltSize + 15)),
        code('ERR_SHORT_HEADER'),
      );
      assert.throws(
        () => decodeUdp2017(method, key, sealUdpPacket(method, key, Buffer.from([1, 10, 0]))),
        code('ERR_ADDRESS'),
      );
      assert.throws(
        () => decodeUdp2017(method, key, sealUdpPacket(method, key, Buffer.from([9, 10, 0]))),
        code('ERR_ADDRESS'),
      );
    });

    it('property: random datagrams give a ProtocolError', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
          assert.throws(
            () => decodeUdp2017(method, key, junk),
            (e: unknown) => e instanceof ProtocolError,
          );
        }),
        { numRuns: 100 },
      );
    });

    it('property: any payload round-trips', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 2000 }), (p) => {
          assert.deepEqual(
            decodeUdp2017(method, key, encodeUdp2017(method, key, addr, p)).payload,
            Buffer.from(p),
          );
        }),
        { numRuns: 50 },
      );
    });
  });
}

describe('SIP004 UDP known-answer vectors (test/vectors/sip022.json, "udp2017")', () => {
  const vectors = (
    JSON.parse(readFileSync(new URL('../../../test/vectors/sip022.json', import.meta.url), 'utf8')) as {
      udp2017: Array<{
        name: string;
        method: string;
        password: string;
        salt: string;
        address: { host: string; port: number };
        payload: string;
        intermediate: { masterKey: string };
        wire: string;
      }>;
    }
  ).udp2017;
  it('cover the three 2017 methods', () => assert.equal(new Set(vectors.map((v) => v.method)).size, 3));
  for (const v of vectors) {
    it(v.name, () => {
      const method = getAeadMethod(v.method);
      const key = evpBytesToKey(v.password, method.keySize);
      assert.equal(key.toString('hex'), v.intermediate.masterKey);
      const address = toSocksAddress(v.address.host, v.address.port);
      const payload = Buffer.from(v.payload, 'hex');
      assert.equal(
        encodeUdp2017(method, key, address, payload, Buffer.from(v.salt, 'hex')).toString('hex'),
        v.wire,
      );
      const got = decodeUdp2017(method, key, Buffer.from(v.wire, 'hex'));
      assert.deepEqual(got.address, address);
      assert.deepEqual(got.payload, payload);
    });
  }
});
