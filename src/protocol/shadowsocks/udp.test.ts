import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import { toSocksAddress } from '../socks5/address.js';
import { evpBytesToKey } from './kdf.js';
import { AEAD_METHODS } from './methods.js';
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
