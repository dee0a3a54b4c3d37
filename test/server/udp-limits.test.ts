/**
 * The UDP relay under one key holder's abuse (udp-relay.ts): sessions past a key's share evict
 * that key's own, not another key's; a datagram's name resolves through the server's name cache
 * and its gate (names.ts, name-lookups.ts), so a stream of datagrams to names that never resolve
 * holds no more lookup threads than a TCP client could. Real UDP sockets on loopback, a real
 * server; the resolver is injected.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getAead2022Method } from '../../src/protocol/shadowsocks/methods2022.js';
import { Udp2022ClientSession } from '../../src/protocol/shadowsocks/udp2022.js';
import type { SocksAddress } from '../../src/protocol/socks5/address.js';
import { lookupSlots } from '../../src/server/name-lookups.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import type { ServerOptions } from '../../src/server/server-options.js';
import { silentLogger } from '../../src/shared/logger.js';
import { sleep, waitFor } from '../helpers/wait.js';

const method = getAead2022Method('2022-blake3-aes-128-gcm');
const secrets = [randomBytes(16), randomBytes(16)];
const keys = secrets.map((k, i) => ({ id: `k${i}`, method: method.name, secret: k.toString('base64') }));

async function udpSocket(onMessage: (m: Buffer, from: dgram.RemoteInfo) => void): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.on('message', onMessage);
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', res));
  return s;
}

async function startServer(o: Partial<ServerOptions>): Promise<{ server: ShadowsocksServer; port: number }> {
  const server = new ShadowsocksServer({ keys, logger: silentLogger, allowPrivateDestinations: true, ...o });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port };
}

describe('UDP relay: one key cannot crowd out the others', () => {
  it("a key past its share of the NAT table evicts its own sessions, not another key's", async () => {
    const seen: dgram.RemoteInfo[] = []; // where the destination saw datagrams come from
    const dest = await udpSocket((_m, from) => seen.push(from));
    const { server, port } = await startServer({ udp: { maxSessions: 8 } }); // 2 per key
    const got: Buffer[] = [];
    const victim = await udpSocket((m) => got.push(m));
    const attacker = await udpSocket(() => {});
    try {
      const to: SocksAddress = { type: 'ipv4', host: '127.0.0.1', port: dest.address().port };
      const mine = new Udp2022ClientSession(method, secrets[1]!);
      victim.send(mine.seal(to, Buffer.from('hello'), Date.now()), port, '127.0.0.1');
      await waitFor(() => seen.length === 1);
      const victimOut = seen[0]!;
      for (let i = 0; i < 12; i++) {
        const s = new Udp2022ClientSession(method, secrets[0]!);
        attacker.send(s.seal(to, Buffer.from(`flood ${i}`), Date.now()), port, '127.0.0.1');
      }
      await waitFor(() => seen.length === 13);
      assert.ok(server.udp!.sessionCount <= 8, `sessions: ${server.udp!.sessionCount}`);
      // The destination answers the victim's flow later: its session (and socket) are still there.
      dest.send(Buffer.from('late reply'), victimOut.port, victimOut.address);
      await waitFor(() => got.length === 1, { timeoutMs: 2000, message: "the victim's session survived" });
      assert.equal(mine.open(got[0]!, Date.now()).payload.toString(), 'late reply');
    } finally {
      for (const s of [dest, victim, attacker]) s.close();
      await server.close();
    }
  });

  it('a key may fill a table no one else needs, and gives up its own sessions when another key needs room', async () => {
    const seen: dgram.RemoteInfo[] = [];
    const dest = await udpSocket((_m, from) => seen.push(from));
    const { server, port } = await startServer({ udp: { maxSessions: 8 } }); // a share of 2
    const got: Buffer[] = [];
    const victim = await udpSocket((m) => got.push(m));
    const other = await udpSocket(() => {});
    try {
      const to: SocksAddress = { type: 'ipv4', host: '127.0.0.1', port: dest.address().port };
      const first = new Udp2022ClientSession(method, secrets[1]!);
      victim.send(first.seal(to, Buffer.from('first'), Date.now()), port, '127.0.0.1');
      await waitFor(() => seen.length === 1);
      const firstOut = seen[0]!;
      for (let i = 0; i < 7; i++) {
        const s = new Udp2022ClientSession(method, secrets[0]!);
        other.send(s.seal(to, Buffer.from(`other ${i}`), Date.now()), port, '127.0.0.1');
      }
      await waitFor(() => seen.length === 8);
      // The other key while nobody needs the room: all that is free, not only its share (a key
      // alone on a server has the whole table).
      assert.equal(server.udp!.sessionCount, 8);
      // The victim's second session in the full table: the key holding the most gives one up,
      // not the victim's first (the least recently active of the whole table).
      const second = new Udp2022ClientSession(method, secrets[1]!);
      victim.send(second.seal(to, Buffer.from('second'), Date.now()), port, '127.0.0.1');
      await waitFor(() => seen.length === 9);
      assert.equal(server.udp!.sessionCount, 8);
      dest.send(Buffer.from('late reply'), firstOut.port, firstOut.address);
      await waitFor(() => got.length === 1, { timeoutMs: 2000, message: 'the first session survived' });
      assert.equal(first.open(got[0]!, Date.now()).payload.toString(), 'late reply');
    } finally {
      for (const s of [dest, victim, other]) s.close();
      await server.close();
    }
  });

  it('datagrams to names resolve under the name gate: a key holds at most its share of lookups', async () => {
    let running = 0;
    let most = 0;
    const hung: (() => void)[] = [];
    const { server, port } = await startServer({
      udp: true,
      nameCache: { lookupMs: 5000 },
      lookup: (host) =>
        new Promise((_res, rej) => {
          most = Math.max(most, ++running);
          hung.push(() => (running--, rej(Object.assign(new Error(host), { code: 'ENOTFOUND' }))));
        }),
    });
    const client = await udpSocket(() => {});
    try {
      const s = new Udp2022ClientSession(method, secrets[0]!);
      for (let i = 0; i < 12; i++) {
        const to: SocksAddress = { type: 'domain', host: `never${i}.test`, port: 9 };
        client.send(s.seal(to, Buffer.from('x'), Date.now()), port, '127.0.0.1');
      }
      await waitFor(() => running >= 1);
      await sleep(300);
      assert.equal(most, lookupSlots() - 1, 'one key: the thread pool less one, less one more');
    } finally {
      for (const h of hung) h();
      client.close();
      await server.close();
    }
  });
});
