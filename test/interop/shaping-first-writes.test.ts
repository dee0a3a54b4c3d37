// Interop: shaped first writes (per-connection salt prefix + header/data split into two chunks)
// are accepted unchanged by the Ladder server and by shadowsocks-libev's ss-server. The wire
// format is plain SIP004, so no server configuration is involved.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { ShadowsocksServer } from '../../src/server/server.js';
import { METHODS, peerSkip, startSsServer, type Peer } from '../helpers/peers.js';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import { fetFeatures } from '../../src/protocol/shadowsocks/shaping-features.js';
import {
  encodeFirstWrite,
  inProberTrigger,
  makeShapedSalt,
  planFirstWrite,
  sip004Length,
} from '../../src/protocol/shadowsocks/shaping.js';

let echo: net.Server;
let echoPort = 0;

before(async () => {
  echo = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  echoPort = (echo.address() as net.AddressInfo).port;
});

after(() => {
  echo.close();
});

/** Data length that makes a single-chunk first write land in the prober trigger. */
function triggerDataLength(saltSize: number, headerLen: number): number {
  for (let d = 1; d < 900; d++) if (inProberTrigger(sip004Length(saltSize, [headerLen + d]))) return d;
  throw new Error('unreachable');
}

async function shapedRoundTrip(
  port: number,
  methodName: string,
  password: string,
  dataLen: number,
): Promise<{ split: boolean; wire: Buffer }> {
  const method = getAeadMethod(methodName);
  const key = evpBytesToKey(password, method.keySize);
  const header = encodeAddress(toSocksAddress('127.0.0.1', echoPort));
  const data = randomBytes(dataLen);
  const enc = new AeadEncoder(method, key, makeShapedSalt(method.saltSize));
  const dec = new AeadDecoder(method, key);
  const wire = encodeFirstWrite(enc, header, data);
  const plan = planFirstWrite(method.saltSize, header.length, data.length);
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  await once(sock, 'connect');
  sock.write(wire);
  const got: Buffer[] = [];
  let n = 0;
  const timer = setTimeout(() => sock.destroy(), 10_000);
  try {
    for await (const chunk of sock as AsyncIterable<Buffer>) {
      for (const p of dec.push(chunk)) {
        got.push(p);
        n += p.length;
      }
      if (n >= data.length) break;
    }
  } finally {
    clearTimeout(timer);
    sock.destroy();
  }
  assert.deepEqual(Buffer.concat(got), data, `${methodName}: echo mismatch (split=${plan.split})`);
  return { split: plan.split, wire };
}

async function exercise(port: number, methodName: string, password: string): Promise<void> {
  const method = getAeadMethod(methodName);
  const headerLen = encodeAddress(toSocksAddress('127.0.0.1', 1)).length;
  const inTrig = triggerDataLength(method.saltSize, headerLen);
  // One write that needs the split, one that does not; several connections each (fresh prefixes).
  for (const dataLen of [inTrig, inTrig + 1, 1000]) {
    for (let i = 0; i < 4; i++) {
      const { split, wire } = await shapedRoundTrip(port, methodName, password, dataLen);
      assert.equal(split, dataLen === inTrig);
      assert.ok(!inProberTrigger(wire.length));
      assert.ok(fetFeatures(wire).exempt);
    }
  }
}

describe('shaped first writes against the Ladder server', () => {
  for (const methodName of METHODS) {
    test(methodName, async () => {
      const server = new ShadowsocksServer({
        keys: [{ id: 'k', method: methodName, secret: 'shape-pw' }],
        allowPrivateDestinations: true,
      });
      const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
      try {
        await exercise(port, methodName, 'shape-pw');
      } finally {
        await server.close();
      }
    });
  }
});

const skip = peerSkip('ss-server');
describe('shaped first writes against shadowsocks-libev ss-server', { skip }, () => {
  for (const methodName of METHODS) {
    test(methodName, async () => {
      let peer: (Peer & { port: number }) | undefined;
      try {
        peer = await startSsServer({ method: methodName, password: 'shape-pw' });
        await exercise(peer.port, methodName, 'shape-pw');
      } finally {
        await peer?.stop();
      }
    });
  }
});
