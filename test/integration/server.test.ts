import { randomBytes, createHash } from 'node:crypto';
import net from 'node:net';
import { rawProbe } from '../helpers/net.js';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  startDataPlane,
  type ConnectionClosedEvent,
  type AuthEvent,
  type DataPlane,
} from '../../src/server/index.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { AeadEncoder, AeadSession } from '../../src/protocol/shadowsocks/aead.js';
import { deriveSubkey, evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { waitFor } from '../helpers/wait.js';

interface Echo {
  port: number;
  close(): Promise<void>;
}

async function startEcho(host: string): Promise<Echo> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function ipv6Available(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const METHODS = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305'] as const;

describe('ShadowsocksServer relays real encrypted connections', () => {
  let echo4: Echo;
  let echo6: Echo | undefined;
  let plane: DataPlane;
  const closed: ConnectionClosedEvent[] = [];
  const auths: AuthEvent[] = [];
  let opened = 0;
  const usage = new Map<string, { up: number; down: number }>();
  const keys: RuntimeKey[] = METHODS.map((m) => ({ id: m, method: m, secret: `pw-${m}` }));

  before(async () => {
    echo4 = await startEcho('127.0.0.1');
    if (await ipv6Available()) echo6 = await startEcho('::1');
    plane = await startDataPlane({
      keys,
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
      timeouts: { idleMs: 5_000 },
      hooks: {
        onConnectionOpened: () => opened++,
        onConnectionClosed: (e) => closed.push(e),
        onAuthenticated: (e) => auths.push(e),
      },
      usage: {
        addBytes: (id, up, down) => {
          const u = usage.get(id) ?? { up: 0, down: 0 };
          u.up += up;
          u.down += down;
          usage.set(id, u);
        },
      },
    });
  });
  after(async () => {
    await plane.close();
    await echo4.close();
    await echo6?.close();
  });

  for (const method of METHODS) {
    it(`${method}: IPv4 target, 200 KiB each way, header and first data in one write, half-close`, async () => {
      const body = randomBytes(200 * 1024);
      const t = await openTestTunnel({
        port: plane.address.port,
        method,
        password: `pw-${method}`,
        target: { host: '127.0.0.1', port: echo4.port },
        initial: body.subarray(0, 1000),
      });
      t.send(body.subarray(1000));
      t.end(); // half-close: the echo still answers everything, then FINs back
      const got = await t.read(body.length, 10_000);
      assert.equal(sha(got), sha(body));
      const c = await t.closed;
      assert.equal(c.kind, 'fin');
      assert.deepEqual(t.errors, []);
      // The server's response stream starts with its own random salt, not ours.
      const saltLen = method === 'aes-128-gcm' ? 16 : 32;
      assert.notDeepEqual(t.receivedWire[0]!.subarray(0, saltLen), t.sentWire[0]!.subarray(0, saltLen));
    });
  }

  it('IPv6 target ([::1])', async (t) => {
    if (!echo6) return t.skip('no IPv6 loopback on this machine');
    const tun = await openTestTunnel({
      port: plane.address.port,
      method: 'chacha20-ietf-poly1305',
      password: 'pw-chacha20-ietf-poly1305',
      target: { host: '::1', port: echo6.port },
      initial: Buffer.from('hello over v6'),
    });
    assert.equal((await tun.read(13)).toString(), 'hello over v6');
    tun.end();
    await tun.closed;
  });

  it('domain target (localhost, resolved at the server)', async () => {
    const tun = await openTestTunnel({
      port: plane.address.port,
      method: 'aes-256-gcm',
      password: 'pw-aes-256-gcm',
      target: { host: 'localhost', port: echo4.port },
    });
    tun.send(Buffer.from('by name'));
    assert.equal((await tun.read(7)).toString(), 'by name');
    tun.end();
    await tun.closed;
  });

  it('reports OK status, time to authenticate and byte usage per key', async () => {
    plane.server.flushUsage();
    const ok = closed.filter((e) => e.status === 'OK');
    assert.ok(ok.length >= 3, `OK closes: ${ok.length}`);
    assert.ok(ok.every((e) => !e.probe && e.keyId !== undefined && e.timeToAuthMs !== undefined));
    assert.equal(opened, closed.length + plane.server.connectionCount);
    assert.ok(auths.every((a) => a.timeToAuthMs >= 0));
    const u = usage.get('aes-128-gcm');
    assert.ok(u && u.up > 200 * 1024 && u.down > 200 * 1024, JSON.stringify(u));
  });
});

describe('many keys on one port', () => {
  let echo: Echo;
  let plane: DataPlane;
  const auths: AuthEvent[] = [];
  const keys: RuntimeKey[] = Array.from({ length: 30 }, (_, i) => ({
    id: `k${i}`,
    method: METHODS[i % 3]!,
    secret: `secret-${i}`,
  }));

  before(async () => {
    echo = await startEcho('127.0.0.1');
    plane = await startDataPlane({
      keys,
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
      timeouts: { idleMs: 3_000 },
      hooks: { onAuthenticated: (e) => auths.push(e) },
    });
  });
  after(async () => {
    await plane.close();
    await echo.close();
  });

  const roundTrip = async (i: number): Promise<void> => {
    const k = keys[i]!;
    const t = await openTestTunnel({
      port: plane.address.port,
      method: k.method,
      password: k.secret,
      target: { host: '127.0.0.1', port: echo.port },
      initial: Buffer.from(`key ${i}`),
    });
    assert.equal((await t.read(`key ${i}`.length)).toString(), `key ${i}`);
    t.end();
    await t.closed;
  };

  it('finds the right key by trial decryption, trying recently used keys from the client IP first', async () => {
    await roundTrip(29);
    const first = auths.at(-1)!;
    assert.equal(first.keyId, 'k29');
    assert.equal(first.recent, false);
    assert.ok(first.keysTried >= 10, `tried ${first.keysTried}`); // aes-128 keys (16-byte salt) are not skipped
    await roundTrip(29);
    const second = auths.at(-1)!;
    assert.equal(second.keyId, 'k29');
    assert.equal(second.recent, true);
    assert.equal(second.keysTried, 1);
    await roundTrip(0);
    assert.equal(auths.at(-1)!.keyId, 'k0');
  });

  it('setKeys() revokes: open connection of the removed key closes, others keep working', async () => {
    const victim = await openTestTunnel({
      port: plane.address.port,
      method: keys[5]!.method,
      password: keys[5]!.secret,
      target: { host: '127.0.0.1', port: echo.port },
      initial: Buffer.from('x'),
    });
    await victim.read(1);
    assert.equal(plane.server.openConnections().get('k5'), 1);
    plane.server.setKeys(keys.filter((k) => k.id !== 'k5'));
    await victim.closed;
    assert.equal(plane.server.openConnections().get('k5'), undefined);
    await roundTrip(6);
    // The revoked key is now just garbage: no data, connection left open.
    const again = await openTestTunnel({
      port: plane.address.port,
      method: keys[5]!.method,
      password: keys[5]!.secret,
      target: { host: '127.0.0.1', port: echo.port },
      initial: Buffer.from('y'),
    });
    await assert.rejects(again.read(1, 400), /timed out/);
    again.destroy();
    plane.server.setKeys(keys);
  });

  it('closeKeyConnections() closes and counts', async () => {
    const t = await openTestTunnel({
      port: plane.address.port,
      method: keys[7]!.method,
      password: keys[7]!.secret,
      target: { host: '127.0.0.1', port: echo.port },
      initial: Buffer.from('z'),
    });
    await t.read(1);
    assert.equal(plane.server.closeKeyConnections('k7'), 1);
    await t.closed;
    assert.equal(plane.server.closeKeyConnections('k7'), 0);
  });
});

describe('probe resistance', () => {
  const IDLE = 1_500;
  let echo: Echo;
  let plane: DataPlane;
  const closed: ConnectionClosedEvent[] = [];
  const waitStatus = async (status: string, n = 1): Promise<void> => {
    const message = (): string => `expected ${n} x ${status}: ${closed.map((e) => e.status).join(',')}`;
    await waitFor(() => closed.filter((e) => e.status === status).length >= n, {
      timeoutMs: 5000,
      intervalMs: 50,
      message,
    });
    assert.ok(
      closed.filter((e) => e.status === status).length >= n,
      `expected ${n} x ${status}: ${closed.map((e) => e.status).join(',')}`,
    );
  };

  before(async () => {
    echo = await startEcho('127.0.0.1');
    plane = await startDataPlane({
      keys: [{ id: 'a', method: 'chacha20-ietf-poly1305', secret: 'probe-pw' }],
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
      timeouts: { idleMs: IDLE },
      hooks: { onConnectionClosed: (e) => closed.push(e) },
    });
  });
  after(async () => {
    await plane.close();
    await echo.close();
  });

  it('garbage of several lengths: no bytes back, FIN only after the idle timeout, honest client unaffected', async () => {
    const lengths = [1, 8, 49, 50, 51, 100, 221];
    const probes = lengths.map((n) => rawProbe(plane.address.port, randomBytes(n), IDLE + 6_000));
    // An honest client in the middle of the garbage.
    const t = await openTestTunnel({
      port: plane.address.port,
      method: 'chacha20-ietf-poly1305',
      password: 'probe-pw',
      target: { host: '127.0.0.1', port: echo.port },
      initial: Buffer.from('still works'),
    });
    assert.equal((await t.read(11)).toString(), 'still works');
    t.end();
    const results = await Promise.all(probes);
    for (const [i, r] of results.entries()) {
      assert.equal(r.received, 0, `length ${lengths[i]}: got data`);
      assert.equal(r.kind, 'fin', `length ${lengths[i]}: closed by ${r.kind}`);
      assert.ok(
        r.afterMs >= IDLE - 50 && r.afterMs < IDLE + 4_000,
        `length ${lengths[i]}: closed after ${r.afterMs} ms`,
      );
    }
  });

  it('a probe that closes first gets a FIN back (no RST), whatever it sent', async () => {
    for (const n of [10, 200]) {
      const r = await new Promise<string>((resolve) => {
        const s = net.connect({ port: plane.address.port, host: '127.0.0.1', allowHalfOpen: true });
        let kind = 'none';
        s.on('connect', () => s.end(randomBytes(n)));
        s.on('data', () => (kind = 'data'));
        s.on('end', () => (kind = kind === 'none' ? 'fin' : kind));
        s.on('error', (e: NodeJS.ErrnoException) => (kind = e.code ?? 'error'));
        s.on('close', () => resolve(kind));
      });
      assert.equal(r, 'fin', `length ${n}`);
    }
  });

  it('identical replay of a real first packet gets the uniform reaction (ERR_REPLAY_CLIENT)', async () => {
    const t = await openTestTunnel({
      port: plane.address.port,
      method: 'chacha20-ietf-poly1305',
      password: 'probe-pw',
      target: { host: '127.0.0.1', port: echo.port },
      initial: Buffer.from('original'),
    });
    assert.equal((await t.read(8)).toString(), 'original');
    const first = t.sentWire[0]!;
    const response = Buffer.concat(t.receivedWire);
    t.end();
    await t.closed;

    const replay = await rawProbe(plane.address.port, first, IDLE + 6_000);
    assert.equal(replay.received, 0);
    assert.equal(replay.kind, 'fin');
    assert.ok(replay.afterMs >= IDLE - 50, `closed after ${replay.afterMs} ms`);
    await waitStatus('ERR_REPLAY_CLIENT');

    // The server's own response sent back to it: same key, so it would authenticate without the
    // server-salt filter.
    const reflected = await rawProbe(plane.address.port, response, IDLE + 6_000);
    assert.equal(reflected.received, 0);
    assert.equal(reflected.kind, 'fin');
    await waitStatus('ERR_REPLAY_SERVER');
    await waitStatus('ERR_CIPHER');
  });

  it('authenticated but malformed first chunk (bad address type, zero length) gets the uniform reaction', async () => {
    const method = getAeadMethod('chacha20-ietf-poly1305');
    const key = evpBytesToKey('probe-pw', method.keySize);
    // A valid chunk whose address type byte is 0x07.
    const badAtyp = new AeadEncoder(method, key).encode(Buffer.from([0x07, 1, 2, 3, 4, 0, 80, 9, 9]));
    // A first length chunk that authenticates but says 0 bytes.
    const salt = Buffer.alloc(32, 0x5a);
    const zeroLen = Buffer.concat([
      salt,
      new AeadSession(method, deriveSubkey(key, salt)).seal(Buffer.from([0, 0])),
      Buffer.alloc(40),
    ]);
    const [a, b] = await Promise.all([
      rawProbe(plane.address.port, badAtyp, IDLE + 6_000),
      rawProbe(plane.address.port, zeroLen, IDLE + 6_000),
    ]);
    for (const r of [a, b]) {
      assert.equal(r.received, 0);
      assert.equal(r.kind, 'fin');
      assert.ok(r.afterMs >= IDLE - 50, `closed after ${r.afterMs} ms`);
    }
    await waitStatus('ERR_ADDRESS');
    await waitStatus('ERR_PAYLOAD_SIZE');
  });

  it('private destinations are refused unless allowed', async () => {
    const strict = await startDataPlane({
      keys: [{ id: 'a', method: 'aes-128-gcm', secret: 'x' }],
      port: 0,
      host: '127.0.0.1',
      timeouts: { idleMs: IDLE },
    });
    try {
      const t = await openTestTunnel({
        port: strict.address.port,
        method: 'aes-128-gcm',
        password: 'x',
        target: { host: '127.0.0.1', port: echo.port },
        initial: Buffer.from('hi'),
      });
      const c = await t.closed;
      assert.equal(c.kind, 'fin');
      assert.equal(t.receivedWire.length, 0);
      assert.equal(echo.port > 0, true);
    } finally {
      await strict.close();
    }
  });
});

describe('replay state survives a restart (replayStateFile)', () => {
  it('a first packet recorded before a restart is refused after it; without the file it would be relayed', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(mkdtempSync(join(tmpdir(), 'ladder-replay-')), 'replay.bin');
    const echo = await startEcho('127.0.0.1');
    const closed: ConnectionClosedEvent[] = [];
    const opts = {
      keys: [{ id: 'a', method: 'aes-256-gcm', secret: 'restart-pw' }],
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
      timeouts: { idleMs: 800 },
      replayStateFile: file,
      hooks: { onConnectionClosed: (e: ConnectionClosedEvent) => closed.push(e) },
    };
    try {
      const first = await startDataPlane(opts);
      const t = await openTestTunnel({
        port: first.address.port,
        method: 'aes-256-gcm',
        password: 'restart-pw',
        target: { host: '127.0.0.1', port: echo.port },
        initial: Buffer.from('before restart'),
      });
      await t.read(14);
      const packet = t.sentWire[0]!;
      const response = Buffer.concat(t.receivedWire);
      t.end();
      await t.closed;
      await first.close(); // saves the state

      const second = await startDataPlane(opts);
      try {
        const replay = await rawProbe(second.address.port, packet, 4_000);
        assert.equal(replay.received, 0);
        assert.equal(replay.kind, 'fin');
        const reflected = await rawProbe(second.address.port, response, 4_000);
        assert.equal(reflected.received, 0);
        await waitFor(() => closed.some((e) => e.status === 'ERR_REPLAY_SERVER'), {
          timeoutMs: 2000,
          message: 'ERR_REPLAY_SERVER',
        });
        assert.deepEqual(
          closed.slice(-2).map((e) => e.status),
          ['ERR_REPLAY_CLIENT', 'ERR_REPLAY_SERVER'],
        );
      } finally {
        await second.close();
      }

      // Negative control: a fresh server without the file relays the same replay (DATA comes back).
      const { replayStateFile: _drop, ...noFile } = opts;
      const third = await startDataPlane(noFile);
      try {
        const replay = await rawProbe(third.address.port, packet, 1_500);
        assert.ok(replay.received > 0, 'control: the replay should have been relayed');
      } finally {
        await third.close();
      }
    } finally {
      await echo.close();
    }
  });
});
