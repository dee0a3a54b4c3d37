import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Aead2022RequestDecoder, Aead2022RequestEncoder, SaltWindow } from './aead2022.js';
import { getAead2022Method } from './methods2022.js';
import { fetFeatures, signatureStats } from './shaping-features.js';
import { inProberTrigger, type Rng } from './shaping.js';
import {
  firstWritePadding2022,
  makeShapedSalt2022,
  MIN_RANDOM_SALT_BYTES_2022,
  prefixBudget2022,
  request2022Length,
  shapes2022,
} from './shaping2022.js';
import { encodedAddressLength, type SocksAddress } from '../socks5/address.js';

function seededRng(seed: string): Rng {
  let counter = 0;
  let pool = Buffer.alloc(0);
  return (n) => {
    while (pool.length < n)
      pool = Buffer.concat([pool, createHash('sha256').update(`${seed}:${counter++}`).digest()]);
    const out = pool.subarray(0, n);
    pool = pool.subarray(n);
    return Uint8Array.from(out);
  };
}

const NOW = 1_767_225_600_000;
const target: SocksAddress = { type: 'domain', host: 'example.com', port: 443 };

test('2022 budget: 32-byte salts take up to 16 prefix bytes, 16-byte salts none', () => {
  assert.equal(prefixBudget2022(32), 16);
  assert.equal(prefixBudget2022(16), 0);
  assert.ok(shapes2022(32));
  assert.ok(!shapes2022(16));
  assert.throws(() => makeShapedSalt2022(16), /no room for a prefix that keeps 16 random bytes/);
  assert.equal(MIN_RANDOM_SALT_BYTES_2022, 16);
});

test('2022 D1: 1,000 shaped request first writes (aes-256 and chacha20) are C6-exempt, vary, and decode on a server with a replay window', () => {
  for (const name of ['2022-blake3-aes-256-gcm', '2022-blake3-chacha20-poly1305']) {
    const method = getAead2022Method(name);
    const key = randomBytes(method.keySize);
    const rng = seededRng(name);
    const salts = new SaltWindow();
    const packets: Buffer[] = [];
    for (let i = 0; i < 1000; i++) {
      const enc = new Aead2022RequestEncoder(method, key, { salt: makeShapedSalt2022(32, { rng }) });
      const data = randomBytes(32 + (i % 500));
      const wire = enc.encodeHeader(target, data, NOW);
      packets.push(wire);
      // The server (with the 60 s salt window) accepts every prefixed salt and reads the data.
      const dec = new Aead2022RequestDecoder(method, { key, salts });
      assert.deepEqual(Buffer.concat(dec.push(wire, NOW)), data);
    }
    const notExempt = packets.filter((p) => !(fetFeatures(p).ex2 || fetFeatures(p).ex5));
    assert.equal(notExempt.length, 0, `${name}: ${notExempt.length} not exempt by Ex2/Ex5`);
    const st = signatureStats(packets);
    assert.ok(
      st.minOffsetEntropy > 4,
      `${name}: per-offset entropy ${st.offsetEntropy.map((h) => h.toFixed(2)).join(' ')}`,
    );
    assert.ok(st.leadingShare[5]! <= 0.01, `${name}: a 6-byte start recurs in ${st.leadingShare[5]}`);
    // The last 16 salt bytes are the random tail: no two of the 1,000 share them.
    assert.equal(new Set(packets.map((p) => p.subarray(16, 32).toString('hex'))).size, 1000);
  }
});

test('2022 D1 negative control: unprefixed 2022 first writes are C6-eligible (bar chance)', () => {
  const method = getAead2022Method('2022-blake3-aes-256-gcm');
  const key = randomBytes(32);
  let exempt = 0;
  for (let i = 0; i < 1000; i++) {
    const wire = new Aead2022RequestEncoder(method, key).encodeHeader(
      target,
      randomBytes(64 + (i % 400)),
      NOW,
    );
    if (fetFeatures(wire).exempt) exempt++;
  }
  assert.ok(exempt <= 10, `${exempt} of 1000 unshaped 2022 first writes exempt`);
});

test('2022 D3: the chosen padding keeps every first write off the prober trigger, and the server reads it', () => {
  const method = getAead2022Method('2022-blake3-aes-256-gcm');
  const key = randomBytes(32);
  const addr = encodedAddressLength(target);
  let moved = 0;
  for (let dataLen = 0; dataLen <= 1000; dataLen++) {
    const unpadded = request2022Length(32, 0, addr, 0, dataLen);
    const pad = firstWritePadding2022(unpadded, dataLen, seededRng(`pad${dataLen}`));
    if (dataLen > 0 && pad > 0) moved++;
    assert.ok(pad <= 900 && (dataLen > 0 || pad >= 1));
    const data = randomBytes(dataLen);
    const wire = new Aead2022RequestEncoder(method, key).encodeHeader(target, data, NOW, Buffer.alloc(pad));
    assert.equal(wire.length, unpadded + pad, `length formula at ${dataLen}`);
    assert.ok(!inProberTrigger(wire.length), `data ${dataLen}: ${wire.length} in the trigger`);
    const dec = new Aead2022RequestDecoder(method, { key });
    assert.deepEqual(Buffer.concat(dec.push(wire, NOW)), data);
    assert.equal(dec.header!.paddingLength, pad);
  }
  // Control: without the padding choice some lengths do land in the trigger (2 of 16 classes).
  assert.ok(moved > 50, `padding added for ${moved} lengths`);
  // With identity headers (SIP023) the formula still holds.
  assert.equal(request2022Length(32, 2, addr, 3, 10), 32 + 32 + 27 + addr + 2 + 3 + 10 + 16);
});

test('2022 D3: padding at the 900-byte cap moves down, not past the cap', () => {
  // unpadded + 900 in the trigger: 900 + 94 = 994 (994 % 16 = 2).
  const ones: Rng = () => Uint8Array.from([0x03, 0x83]); // (0x0383 % 900) + 1 = 900
  assert.equal(firstWritePadding2022(94, 0, ones), 899);
});
