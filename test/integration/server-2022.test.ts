/**
 * ShadowsocksServer with Shadowsocks 2022 keys (SIP022 TCP, SIP023 identity headers): relaying,
 * a port shared with SIP004 keys, 10,000 users found by identity header, and every refusal
 * (replay within the window, replay after it, replay across a restart, timestamp 31 s off, wrong
 * type byte, unknown identity) meeting the same uniform reaction as garbage.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { rawProbe } from '../helpers/net.js';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  startDataPlane,
  type AuthEvent,
  type ConnectionClosedEvent,
  type DataPlane,
  type ServerOptions,
} from '../../src/server/index.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { writeFile } from 'node:fs/promises';
import { AeadEncoder, AeadSession } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { SaltFilter } from '../../src/protocol/shadowsocks/replay.js';
import { Aead2022RequestEncoder, Aead2022ResponseDecoder } from '../../src/protocol/shadowsocks/aead2022.js';
import { deriveSessionSubkey } from '../../src/protocol/shadowsocks/kdf2022.js';
import {
  getAead2022Method,
  type Aead2022Method,
  type Aead2022MethodName,
} from '../../src/protocol/shadowsocks/methods2022.js';
import { encodeAddress } from '../../src/protocol/socks5/address.js';
import type { Clock } from '../../src/shared/clock.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { waitFor } from '../helpers/wait.js';

const METHODS: Aead2022MethodName[] = [
  '2022-blake3-aes-128-gcm',
  '2022-blake3-aes-256-gcm',
  '2022-blake3-chacha20-poly1305',
];
const IDLE_MS = 1_000;
const b64 = (b: Buffer): string => b.toString('base64');

interface Echo {
  port: number;
  close(): Promise<void>;
}

async function startEcho(): Promise<Echo> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A clock whose now() can be moved; timers run on real time (the idle timeout stays real). */
class OffsetClock implements Clock {
  offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
  setTimeout(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
    return setTimeout(fn, ms);
  }
  clearTimeout(t: unknown): void {
    clearTimeout(t as ReturnType<typeof setTimeout>);
  }
}

interface Harness {
  plane: DataPlane;
  auths: AuthEvent[];
  closed: ConnectionClosedEvent[];
}

async function startServer(keys: RuntimeKey[], extra: Partial<ServerOptions> = {}): Promise<Harness> {
  const auths: AuthEvent[] = [];
  const closed: ConnectionClosedEvent[] = [];
  const plane = await startDataPlane({
    keys,
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    timeouts: { idleMs: IDLE_MS },
    hooks: { onAuthenticated: (e) => auths.push(e), onConnectionClosed: (e) => closed.push(e) },
    ...extra,
  });
  return { plane, auths, closed };
}

/** The status of the refused connection that sent exactly `bytes` bytes (waits, bounded). */
async function statusOf(h: Harness, bytes: number, timeoutMs = 5_000): Promise<string | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const e = h.closed.find((c) => c.bytesUp === bytes && c.bytesDown === 0 && c.status !== 'OK');
    if (e || Date.now() > end) {
      h.closed.length = 0;
      return e?.status;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The uniform reaction: nothing sent, connection held until the idle timeout, then a FIN. */
function assertUniform(r: { received: number; kind: string; afterMs: number }, what: string): void {
  assert.equal(r.received, 0, `${what}: no byte back`);
  assert.equal(r.kind, 'fin', `${what}: closed with FIN`);
  assert.ok(r.afterMs >= IDLE_MS - 50, `${what}: held until the idle timeout (${r.afterMs} ms)`);
}

interface Tunnel2022 {
  socket: net.Socket;
  /** The first write (salt, headers, initial payload), as sent. */
  first: Buffer;
  exchange(data: Buffer, n: number): Promise<Buffer>;
}

/** A raw 2022 client: one request, echo check through a response decoder. */
async function open2022(
  port: number,
  method: Aead2022Method,
  userKey: Buffer,
  target: number,
  initial: Buffer,
  opts: { identityKeys?: Buffer[]; nowMs?: number; raw?: Buffer } = {},
): Promise<Tunnel2022> {
  const enc = new Aead2022RequestEncoder(method, userKey, { identityKeys: opts.identityKeys ?? [] });
  const first =
    opts.raw ??
    enc.encodeHeader({ type: 'ipv4', host: '127.0.0.1', port: target }, initial, opts.nowMs ?? Date.now());
  const dec = new Aead2022ResponseDecoder(method, userKey, enc.salt);
  const socket = net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const received: Buffer[] = [];
  let total = 0;
  let waiter: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    for (const p of dec.push(d, Date.now())) {
      received.push(p);
      total += p.length;
    }
    waiter?.();
  });
  socket.write(first);
  return {
    socket,
    first,
    exchange: async (data, n) => {
      if (data.length > 0) socket.write(enc.encode(data));
      const end = Date.now() + 10_000;
      while (total < n && Date.now() < end) {
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 200);
        });
      }
      return Buffer.concat(received);
    },
  };
}

describe('SIP022 TCP: relaying with every method, and a port shared with SIP004', () => {
  let echo: Echo;
  let h: Harness;
  const keys = new Map<Aead2022MethodName, Buffer>();
  const ipsk = randomBytes(16);
  const upsk = randomBytes(16);
  before(async () => {
    echo = await startEcho();
    const rk: RuntimeKey[] = [{ id: 'old', method: 'aes-256-gcm', secret: 'sip004 password' }];
    for (const m of METHODS) {
      const k = randomBytes(getAead2022Method(m).keySize);
      keys.set(m, k);
      rk.push({ id: m, method: m, secret: b64(k) });
    }
    rk.push({ id: 'user', method: '2022-blake3-aes-128-gcm', secret: `${b64(ipsk)}:${b64(upsk)}` });
    h = await startServer(rk);
    assert.deepEqual(h.plane.server.rejectedKeys, []);
  });
  after(async () => {
    await h.plane.close();
    await echo.close();
  });

  for (const m of METHODS) {
    it(`${m}: 200 KiB echoed in chunks, response echoes the request salt`, async () => {
      const method = getAead2022Method(m);
      const t = await open2022(h.plane.address.port, method, keys.get(m)!, echo.port, Buffer.from('hello'));
      const payload = randomBytes(200 * 1024);
      const back = await t.exchange(payload, 5 + payload.length);
      assert.equal(back.length, 5 + payload.length);
      assert.ok(back.equals(Buffer.concat([Buffer.from('hello'), payload])));
      t.socket.destroy();
      assert.equal(h.auths.at(-1)!.keyId, m);
      assert.equal(h.auths.at(-1)!.edition, 2022);
    });
  }

  it('a request with padding and no initial payload works', async () => {
    const method = getAead2022Method('2022-blake3-aes-256-gcm');
    const t = await open2022(
      h.plane.address.port,
      method,
      keys.get(method.name)!,
      echo.port,
      Buffer.alloc(0),
    );
    const back = await t.exchange(Buffer.from('later'), 5);
    assert.equal(back.toString(), 'later');
    t.socket.destroy();
  });

  it('SIP023 user and SIP004 key on the same port', async () => {
    const method = getAead2022Method('2022-blake3-aes-128-gcm');
    const t = await open2022(h.plane.address.port, method, upsk, echo.port, Buffer.from('id!'), {
      identityKeys: [ipsk],
    });
    assert.equal((await t.exchange(Buffer.alloc(0), 3)).toString(), 'id!');
    t.socket.destroy();
    assert.equal(h.auths.at(-1)!.keyId, 'user');
    assert.equal(h.auths.at(-1)!.keysTried, 1);

    const old = await openTestTunnel({
      port: h.plane.address.port,
      host: '127.0.0.1',
      method: 'aes-256-gcm',
      password: 'sip004 password',
      target: { host: '127.0.0.1', port: echo.port },
      initial: Buffer.from('2017'),
    });
    assert.equal((await old.read(4)).toString(), '2017');
    old.destroy();
    assert.equal(h.auths.at(-1)!.keyId, 'old');
    assert.equal(h.auths.at(-1)!.edition, 2017);
  });
});

describe('SIP023: 10,000 users on one port, found by identity header', () => {
  let echo: Echo;
  let h: Harness;
  const ipsk = randomBytes(32);
  const users: Buffer[] = [];
  before(async () => {
    echo = await startEcho();
    const rk: RuntimeKey[] = [];
    for (let i = 0; i < 10_000; i++) {
      const u = randomBytes(32);
      users.push(u);
      rk.push({ id: `u${i}`, method: '2022-blake3-aes-256-gcm', secret: `${b64(ipsk)}:${b64(u)}` });
    }
    h = await startServer(rk);
    assert.equal(h.plane.server.rejectedKeys.length, 0);
  });
  after(async () => {
    await h.plane.close();
    await echo.close();
  });

  it('users 0, 4999 and 9999 each authenticate with one lookup and relay', async () => {
    const method = getAead2022Method('2022-blake3-aes-256-gcm');
    for (const i of [0, 4999, 9999]) {
      const t = await open2022(h.plane.address.port, method, users[i]!, echo.port, Buffer.from(`user ${i}`), {
        identityKeys: [ipsk],
      });
      const back = await t.exchange(Buffer.alloc(0), `user ${i}`.length);
      assert.equal(back.toString(), `user ${i}`);
      t.socket.destroy();
      assert.equal(h.auths.at(-1)!.keyId, `u${i}`);
      assert.equal(h.auths.at(-1)!.keysTried, 1);
    }
  });

  it('a removed user is refused with the uniform reaction; others keep working', async () => {
    const method = getAead2022Method('2022-blake3-aes-256-gcm');
    const rk: RuntimeKey[] = users.slice(1).map((u, i) => ({
      id: `u${i + 1}`,
      method: '2022-blake3-aes-256-gcm',
      secret: `${b64(ipsk)}:${b64(u)}`,
    }));
    h.plane.server.setKeys(rk);
    const enc = new Aead2022RequestEncoder(method, users[0]!, { identityKeys: [ipsk] });
    const first = enc.encodeHeader(
      { type: 'ipv4', host: '127.0.0.1', port: echo.port },
      Buffer.from('x'),
      Date.now(),
    );
    assertUniform(await rawProbe(h.plane.address.port, first, IDLE_MS + 2_000), 'unknown identity');
    assert.equal(await statusOf(h, first.length), 'ERR_CIPHER');
    const t = await open2022(h.plane.address.port, method, users[1]!, echo.port, Buffer.from('ok'), {
      identityKeys: [ipsk],
    });
    assert.equal((await t.exchange(Buffer.alloc(0), 2)).toString(), 'ok');
    t.socket.destroy();
  });
});

describe('SIP022 refusals get the same reaction as garbage', () => {
  let echo: Echo;
  let h: Harness;
  const clock = new OffsetClock();
  const method = getAead2022Method('2022-blake3-aes-128-gcm');
  const key = randomBytes(16);
  const target = (): { type: 'ipv4'; host: string; port: number } => ({
    type: 'ipv4',
    host: '127.0.0.1',
    port: echo.port,
  });
  before(async () => {
    echo = await startEcho();
    h = await startServer([{ id: 'k', method: method.name, secret: b64(key) }], { clock });
  });
  after(async () => {
    await h.plane.close();
    await echo.close();
  });

  /** Probe and return the status the server recorded for it. */
  async function refused(bytes: Buffer, what: string): Promise<string> {
    assertUniform(await rawProbe(h.plane.address.port, bytes, IDLE_MS + 2_000), what);
    return (await statusOf(h, bytes.length)) ?? 'none';
  }

  it('garbage of the request prefix length and longer: uniform reaction (the baseline)', async () => {
    assert.equal(await refused(randomBytes(16 + 27), 'garbage 43'), 'ERR_CIPHER');
    assert.equal(await refused(randomBytes(300), 'garbage 300'), 'ERR_CIPHER');
  });

  it('identical replay within 60 s: uniform reaction (ERR_REPLAY_CLIENT)', async () => {
    const t = await open2022(h.plane.address.port, method, key, echo.port, Buffer.from('first'));
    assert.equal((await t.exchange(Buffer.alloc(0), 5)).toString(), 'first');
    t.socket.destroy();
    clock.offset = 0;
    assert.equal(await refused(t.first, 'replay within window'), 'ERR_REPLAY_CLIENT');
  });

  it('identical replay after the 60 s window: refused on its timestamp (ERR_TIMESTAMP)', async () => {
    clock.offset = 0;
    const t = await open2022(h.plane.address.port, method, key, echo.port, Buffer.from('again'));
    assert.equal((await t.exchange(Buffer.alloc(0), 5)).toString(), 'again');
    t.socket.destroy();
    clock.offset = 61_000; // the salt window forgot the salt; the timestamp is now 61 s old
    try {
      assert.equal(h.plane.server.salts2022.has(t.first.subarray(0, 16), clock.now()), false);
      assert.equal(await refused(t.first, 'replay after window'), 'ERR_TIMESTAMP');
    } finally {
      clock.offset = 0;
    }
  });

  it('timestamp 31 s ahead or behind: uniform reaction; 29 s off is accepted', async () => {
    for (const off of [31_000, -31_000]) {
      // Whole seconds on the wire: start early in a second so "31 s" cannot round to 30.
      await waitFor(() => Date.now() % 1000 <= 300, { timeoutMs: 2000, message: 'the start of a second' });
      const enc = new Aead2022RequestEncoder(method, key);
      const bytes = enc.encodeHeader(target(), Buffer.from('x'), Date.now() + off);
      assert.equal(await refused(bytes, `timestamp ${off / 1000} s`), 'ERR_TIMESTAMP');
    }
    const ok = await open2022(h.plane.address.port, method, key, echo.port, Buffer.from('29'), {
      nowMs: Date.now() - 29_000,
    });
    assert.equal((await ok.exchange(Buffer.alloc(0), 2)).toString(), '29');
    ok.socket.destroy();
  });

  it('authenticated header with a wrong type byte: uniform reaction (ERR_HEADER)', async () => {
    const salt = randomBytes(16);
    const session = new AeadSession(method.aead, deriveSessionSubkey(key, salt));
    const addr = encodeAddress(target());
    const variable = Buffer.concat([addr, Buffer.from([0, 0]), Buffer.from('x')]);
    const fixed = Buffer.alloc(11);
    fixed[0] = 1; // server type
    fixed.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000)), 1);
    fixed.writeUInt16BE(variable.length, 9);
    const bytes = Buffer.concat([salt, session.seal(fixed), session.seal(variable)]);
    assert.equal(await refused(bytes, 'type byte'), 'ERR_HEADER');
  });

  it('bad tag on the variable header after a good fixed header: uniform reaction', async () => {
    const enc = new Aead2022RequestEncoder(method, key);
    const bytes = enc.encodeHeader(target(), Buffer.from('xyz'), Date.now());
    bytes[bytes.length - 1]! ^= 1;
    assert.equal(await refused(bytes, 'variable header tag'), 'ERR_CIPHER');
  });

  it('a probe that closes first gets a FIN back, with nothing sent', async () => {
    const r = await rawProbe(h.plane.address.port, randomBytes(20), 300);
    assert.equal(r.received, 0);
    assert.equal(r.kind, 'open'); // still held open by the server when we gave up
  });
});

describe('SIP022 replay across a restart (replayStateFile)', () => {
  let echo: Echo;
  let dir: string;
  const method = getAead2022Method('2022-blake3-aes-256-gcm');
  const key = randomBytes(32);
  const keys: RuntimeKey[] = [{ id: 'k', method: method.name, secret: b64(key) }];
  before(async () => {
    echo = await startEcho();
    dir = await mkdtemp(join(tmpdir(), 'ladder-2022-'));
  });
  after(async () => {
    await echo.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a request relayed before a restart is refused after it (within the timestamp window); without the file it would be relayed', async () => {
    const file = join(dir, 'replay.bin');
    const a = await startServer(keys, { replayStateFile: file });
    const t = await open2022(a.plane.address.port, method, key, echo.port, Buffer.from('before'));
    assert.equal((await t.exchange(Buffer.alloc(0), 6)).toString(), 'before');
    t.socket.destroy();
    await a.plane.close();

    const b = await startServer(keys, { replayStateFile: file });
    try {
      assertUniform(await rawProbe(b.plane.address.port, t.first, IDLE_MS + 2_000), 'replay after restart');
      assert.equal(await statusOf(b, t.first.length), 'ERR_REPLAY_CLIENT');
    } finally {
      await b.plane.close();
    }

    // Negative control: a fresh server without the state relays the same bytes.
    const c = await startServer(keys);
    try {
      const r = await rawProbe(c.plane.address.port, t.first, 1_000);
      assert.ok(r.received > 0, 'the replay is relayed (answered) by a server without replay state');
    } finally {
      await c.plane.close();
    }
  });
});

describe('replay state files from before the 2022 edition (LRS1) still load', () => {
  it('a SIP004 salt in an LRS1 file is refused after the upgrade', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ladder-lrs1-'));
    const echo = await startEcho();
    try {
      const m = getAeadMethod('aes-128-gcm');
      const enc = new AeadEncoder(m, evpBytesToKey('pw', m.keySize));
      const first = enc.encode(
        Buffer.concat([
          encodeAddress({ type: 'ipv4', host: '127.0.0.1', port: echo.port }),
          Buffer.from('x'),
        ]),
      );
      const client = new SaltFilter(100);
      client.add(enc.salt);
      const c = client.serialize();
      const srv = new SaltFilter(100).serialize();
      const head = Buffer.alloc(8);
      head.write('LRS1', 0, 'latin1');
      head.writeUInt32BE(c.length, 4);
      const file = join(dir, 'replay.bin');
      await writeFile(file, Buffer.concat([head, c, srv]));
      const h = await startServer([{ id: 'k', method: m.name, secret: 'pw' }], { replayStateFile: file });
      try {
        assert.equal(h.plane.server.clientSalts.size, 1);
        assertUniform(await rawProbe(h.plane.address.port, first, IDLE_MS + 2_000), 'LRS1 replay');
        assert.equal(await statusOf(h, first.length), 'ERR_REPLAY_CLIENT');
      } finally {
        await h.plane.close();
      }
    } finally {
      await echo.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
