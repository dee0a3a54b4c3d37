/**
 * Codec-level interop of the 2017-edition UDP codec (udp.ts) with shadowsocks-libev, both ways,
 * with no Ladder relay involved: our encodeUdp2017 talks to `ss-server -u`, and `ss-local -u`
 * talks to a bare UDP socket that decodes with decodeUdp2017 and answers with encodeUdp2017.
 * DNS-sized and 1,400-byte datagrams, many of each, every one checked byte for byte.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { connect as tcpConnect, type Socket as TcpSocket } from 'node:net';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { METHODS, peerSkip, startSsLocal, startSsServer, type Peer } from '../helpers/peers.js';
import { toSocksAddress } from '../../src/protocol/socks5/address.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { decodeUdp2017, encodeUdp2017 } from '../../src/protocol/shadowsocks/udp.js';

const PASSWORD = 'udp-interop-password';
const SIZES = [48, 1400];
const ROUNDS = 25; // per size and method

function bindUdp(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => resolve(s));
  });
}

function payloadFor(size: number, i: number): Buffer {
  const b = Buffer.alloc(size);
  for (let j = 0; j < size; j++) b[j] = (i * 31 + j * 7) & 0xff;
  return b;
}

/** Send `packet` and wait for the first datagram accepted by `match`; retries a lost datagram twice. */
function exchange(s: Socket, port: number, packet: Buffer, match: (msg: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let tries = 0;
    let timer: NodeJS.Timeout;
    const onMsg = (msg: Buffer): void => {
      if (!match(msg)) return;
      clearTimeout(timer);
      s.off('message', onMsg);
      resolve(msg);
    };
    const send = (): void => {
      if (tries++ === 3) {
        s.off('message', onMsg);
        reject(new Error('no matching reply after 3 sends'));
        return;
      }
      s.send(packet, port, '127.0.0.1');
      timer = setTimeout(send, 1000);
    };
    s.on('message', onMsg);
    send();
  });
}

/** Echo server that prefixes nothing: returns each datagram to its sender. */
async function startUdpEcho(): Promise<Socket> {
  const s = await bindUdp();
  s.on('message', (msg: Buffer, r: RemoteInfo) => s.send(msg, r.port, r.address));
  return s;
}

function readSome(sock: TcpSocket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => reject(new Error('SOCKS reply timeout')), 5000);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= n) {
        clearTimeout(t);
        sock.off('data', onData);
        resolve(buf);
      }
    };
    sock.on('data', onData);
  });
}

const skip = peerSkip('ss-server', 'ss-local');

describe('SIP004 UDP codec against shadowsocks-libev', { skip }, () => {
  const cleanup: Array<() => unknown> = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  for (const name of METHODS) {
    const method = getAeadMethod(name);
    const key = evpBytesToKey(PASSWORD, method.keySize);

    it(`${name}: our client codec -> ss-server -u -> UDP echo and back`, async () => {
      const echo = await startUdpEcho();
      cleanup.push(() => echo.close());
      const server: Peer & { port: number } = await startSsServer({
        method: name,
        password: PASSWORD,
        extraArgs: ['-u'],
      });
      cleanup.push(() => server.stop());
      const client = await bindUdp();
      cleanup.push(() => client.close());
      const echoAddr = toSocksAddress('127.0.0.1', echo.address().port);
      for (const size of SIZES) {
        for (let i = 0; i < ROUNDS; i++) {
          const payload = payloadFor(size, i);
          const reply = await exchange(
            client,
            server.port,
            encodeUdp2017(method, key, echoAddr, payload),
            (m) => {
              try {
                return decodeUdp2017(method, key, m).payload.equals(payload);
              } catch {
                return false;
              }
            },
          );
          const got = decodeUdp2017(method, key, reply);
          assert.deepEqual(got.address, echoAddr);
          assert.deepEqual(got.payload, payload);
        }
      }
    });

    it(`${name}: SOCKS5 UDP -> ss-local -u -> our server codec, and our reply back`, async () => {
      const fake = await bindUdp();
      cleanup.push(() => fake.close());
      const seen: Buffer[] = [];
      const target = toSocksAddress('192.0.2.7', 5353); // never contacted: our fake server answers
      fake.on('message', (msg: Buffer, r: RemoteInfo) => {
        const d = decodeUdp2017(method, key, msg); // throws (and fails the test) on a bad datagram
        assert.deepEqual(d.address, target);
        seen.push(d.payload);
        const answer = Buffer.from(d.payload).reverse();
        fake.send(encodeUdp2017(method, key, d.address, answer), r.port, r.address);
      });
      const local = await startSsLocal({
        method: name,
        password: PASSWORD,
        serverPort: fake.address().port,
        extraArgs: ['-u'],
      });
      cleanup.push(() => local.stop());

      // SOCKS5 UDP ASSOCIATE on a control connection kept open for the test.
      const ctl = tcpConnect(local.socksPort, '127.0.0.1');
      cleanup.push(() => ctl.destroy());
      await new Promise<void>((res, rej) => ctl.once('connect', res).once('error', rej));
      ctl.write(Buffer.from([5, 1, 0]));
      assert.deepEqual(await readSome(ctl, 2), Buffer.from([5, 0]));
      ctl.write(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
      const rep = await readSome(ctl, 10);
      assert.equal(rep[1], 0, 'UDP ASSOCIATE accepted');
      const relayPort = rep.readUInt16BE(8);

      const app = await bindUdp();
      cleanup.push(() => app.close());
      const header = Buffer.from([0, 0, 0, 1, 192, 0, 2, 7, 0x14, 0xe9]); // RSV RSV FRAG ATYP 192.0.2.7:5353
      for (const size of SIZES) {
        for (let i = 0; i < ROUNDS; i++) {
          const payload = payloadFor(size, i);
          const expect = Buffer.concat([header, Buffer.from(payload).reverse()]);
          const reply = await exchange(app, relayPort, Buffer.concat([header, payload]), (m) =>
            m.equals(expect),
          );
          assert.deepEqual(reply, expect);
        }
      }
      assert.ok(seen.length >= SIZES.length * ROUNDS);
    });
  }
});
