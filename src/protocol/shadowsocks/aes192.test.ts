/**
 * aes-192-gcm (SIP004, 24-byte key and salt) against bytes shadowsocks-libev made: ss-local's TCP
 * stream and UDP datagram captured by test/vectors/gen_libev_aes192.mjs. Both cipher backends
 * (native addon and node:crypto) must decode them and re-encode the same bytes from the same salt.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ProtocolError } from '../errors.js';
import { encodeAddress, toSocksAddress } from '../socks5/address.js';
import { AeadDecoder, AeadEncoder } from './aead.js';
import { evpBytesToKey } from './kdf.js';
import { keyPrefixBudget } from './key-prefix.js';
import { getAeadMethod } from './methods.js';
import { NATIVE_METHOD, nativeAddon, nativeAvailable, nativeLoadError, setNativeEnabled } from './native.js';
import { decodeUdp2017, encodeUdp2017 } from './udp.js';
import { requireOrSkip } from '../../../test/helpers/prereq.js';

const V = JSON.parse(
  readFileSync(new URL('../../../test/vectors/libev-aes-192-gcm.json', import.meta.url), 'utf8'),
) as {
  password: string;
  target: { host: string; port: number };
  tcp: { payload: string; wire: string };
  udp: { payload: string; wire: string };
};
const M = getAeadMethod('aes-192-gcm');
const key = evpBytesToKey(V.password, M.keySize);
const address = toSocksAddress(V.target.host, V.target.port);
const addrBytes = encodeAddress(address);
const tcpWire = Buffer.from(V.tcp.wire, 'hex');
const udpWire = Buffer.from(V.udp.wire, 'hex');

function onBackend<T>(native: boolean, f: () => T): T {
  setNativeEnabled(native);
  try {
    return f();
  } finally {
    setNativeEnabled(true);
  }
}

test('aes-192-gcm: 24-byte key and salt; EVP_BytesToKey matches openssl enc -aes-192-cbc -md md5 -nosalt -P', () => {
  assert.equal(M.keySize, 24);
  assert.equal(M.saltSize, 24);
  assert.equal(key.toString('hex').toUpperCase(), '6ABE3FD677A88DADBF93D331B25D91443EBC9055D3C033F0');
  // 24-byte salt: 16 random bytes kept after an Outline prefix of at most 8.
  assert.equal(keyPrefixBudget('aes-192-gcm'), 8);
});

test('the native addon (ABI 5) offers aes-192-gcm as method 3', (t) => {
  if (
    !requireOrSkip(
      t,
      nativeAvailable(),
      `native addon unavailable (${nativeLoadError() ?? 'unknown'}); run: node scripts/build-native.mjs`,
    )
  )
    return;
  assert.equal(NATIVE_METHOD['aes-192-gcm'], 3);
  assert.equal(nativeAddon()!.available(3), true);
  assert.equal(nativeAddon()!.available(4), false);
});

for (const native of [true, false]) {
  const name = native ? 'native addon' : 'node:crypto';
  test(`libev ss-local TCP stream decodes and re-encodes byte for byte (${name})`, () => {
    onBackend(native, () => {
      const d = new AeadDecoder(M, key);
      const plain = Buffer.concat(d.push(tcpWire));
      assert.deepEqual(plain, Buffer.concat([addrBytes, Buffer.from(V.tcp.payload, 'hex')]));
      // libev sends the address and the payload as two chunks.
      const e = new AeadEncoder(M, key, tcpWire.subarray(0, M.saltSize));
      const again = Buffer.concat([e.encode(addrBytes), e.encode(Buffer.from(V.tcp.payload, 'hex'))]);
      assert.deepEqual(again, tcpWire);
    });
  });

  test(`libev ss-local UDP datagram decodes and re-encodes byte for byte (${name})`, () => {
    onBackend(native, () => {
      const got = decodeUdp2017(M, key, udpWire);
      assert.deepEqual(got.address, address);
      assert.equal(got.payload.toString('hex'), V.udp.payload);
      const again = encodeUdp2017(M, key, address, got.payload, udpWire.subarray(0, M.saltSize));
      assert.deepEqual(again, udpWire);
    });
  });

  test(`negative controls: a flipped byte, aes-256-gcm or the wrong password are refused (${name})`, () => {
    onBackend(native, () => {
      const bad = Buffer.from(tcpWire);
      bad[M.saltSize + 3]! ^= 1;
      assert.throws(() => new AeadDecoder(M, key).push(bad), ProtocolError);
      const aes256 = getAeadMethod('aes-256-gcm');
      assert.throws(
        () => new AeadDecoder(aes256, evpBytesToKey(V.password, 32)).push(tcpWire),
        ProtocolError,
      );
      assert.throws(() => decodeUdp2017(M, evpBytesToKey('wrong', 24), udpWire), ProtocolError);
      const badUdp = Buffer.from(udpWire);
      badUdp[badUdp.length - 1]! ^= 1;
      assert.throws(() => decodeUdp2017(M, key, badUdp), ProtocolError);
    });
  });
}
