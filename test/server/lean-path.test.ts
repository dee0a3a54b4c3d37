/**
 * The lean path of a natively accepted SIP004 connection (LADDER_LEAN_PATH, on by default:
 * server/lean-path.ts): the relay starts from the first call with no NativeStream or Connection.
 * Every case runs against a server with it on and one with it off (the control: connection.ts
 * on the same bytes), and must end the same: statuses, errnos, keys and trial counts, bytes,
 * usage (counted once), reactions (relayed bytes, a prompt FIN after a failed or refused dial,
 * the idle-timeout FIN of a replay), key removal and closeKeyConnections closing a relaying
 * connection, key removal closing a connection whose dial is pending and refusing the key's new
 * connections (the way a data limit, an expiry or a disabled key reaches the server), connectionCount. The counter shows which path ran.
 * The servers share their replay filters as the data-plane workers do (SharedArrayBuffers), so the
 * lean path's checks run in the addon (LADDER_NATIVE_CHECKS) unless a run turns them off: every
 * outcome is compared three ways (lean with the addon's checks, lean with JS's, connection.ts).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { nativeAvailable } from '../../src/protocol/shadowsocks/native.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import { defaultLookup, type Lookup } from '../../src/server/destination.js';
import type { AuthEvent, ConnectionClosedEvent } from '../../src/server/events.js';
import {
  leanPathChecked,
  leanPathFromEnv,
  leanPathServed,
  nativeChecksFromEnv,
} from '../../src/server/lean-path.js';
import { createSharedReplay, sharedReplayFilters } from '../../src/server/workers/shared-salts.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { silentLogger } from '../../src/shared/logger.js';
import { nativeAccept, nativeAcceptLive } from '../../src/transport/native-stream.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { blackholePort, freePort, startEcho, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';
import { probeOnce, type ProbeResult } from '../probing/prober.js';

const KEYS: RuntimeKey[] = [
  { id: 'k1', method: 'aes-256-gcm', secret: 'lean-conn-pw1' },
  { id: 'k2', method: 'aes-128-gcm', secret: 'lean-conn-pw2' },
  { id: 'k3', method: 'chacha20-ietf-poly1305', secret: 'lean-conn-pw3' },
];
const IDLE_MS = 400;
/** The system's resolver, but a name under .test is not found (no DNS query leaves the host). */
const NX_LOOKUP: Lookup = async (host) => {
  if (host.endsWith('.test')) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
  return defaultLookup(host);
};

interface Run {
  server: ShadowsocksServer;
  port: number;
  closed: ConnectionClosedEvent[];
  auth: AuthEvent[];
  usage: Map<string, [number, number]>;
}

async function startServer(
  leanPath: boolean,
  allowPrivateDestinations = true,
  nativeChecks = true,
): Promise<Run> {
  const closed: ConnectionClosedEvent[] = [];
  const auth: AuthEvent[] = [];
  const usage = new Map<string, [number, number]>();
  const server = new ShadowsocksServer({
    keys: KEYS,
    allowPrivateDestinations,
    leanPath,
    nativeChecks,
    replayFilters: sharedReplayFilters(createSharedReplay(1000)),
    timeouts: { idleMs: IDLE_MS, connectMs: 2000 },
    lookup: NX_LOOKUP,
    logger: silentLogger,
    usage: {
      addBytes(id, up, down) {
        const u = usage.get(id) ?? [0, 0];
        usage.set(id, [u[0] + up, u[1] + down]);
      },
    },
    hooks: { onConnectionClosed: (e) => closed.push(e), onAuthenticated: (e) => auth.push(e) },
  });
  const addr = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port: addr.port, closed, auth, usage };
}

/** A client's first bytes under `k`: salt, the target, then `data` (one chunk). */
function request(k: RuntimeKey, host: string, port: number, data: Buffer, salt?: Buffer): Buffer {
  const m = getAeadMethod(k.method as 'aes-256-gcm');
  const header = encodeAddress(toSocksAddress(host, port));
  return new AeadEncoder(m, evpBytesToKey(k.secret, m.keySize), salt).encode(Buffer.concat([header, data]));
}

/** Relay `data` through `k` to the echo server; the reply's wire bytes (its salt first). */
async function relay(r: Run, k: RuntimeKey, echoPort: number, host = '127.0.0.1'): Promise<Buffer> {
  const data = randomBytes(64);
  const t = await openTestTunnel({
    port: r.port,
    method: k.method,
    password: k.secret,
    target: { host, port: echoPort },
    initial: data,
  });
  assert.deepEqual(await t.read(data.length), data);
  t.end();
  await t.closed;
  return Buffer.concat(t.receivedWire);
}

const probe = (port: number, label: string, payload: Buffer): Promise<ProbeResult> =>
  probeOnce(port, { label, payload }, { halfClose: false, giveUpMs: IDLE_MS * 4 });

/** A reaction as compared: bytes back, how it closed, and whether at once or at the idle timeout. */
const shape = (p: ProbeResult) => [
  p.label,
  p.bytesBack,
  p.reaction,
  p.ms < IDLE_MS * 0.5 ? 'prompt' : p.ms >= IDLE_MS * 0.8 && p.ms < IDLE_MS * 3 ? 'idle' : `${p.ms} ms`,
];

describe(
  'the lean path of a natively accepted connection',
  {
    skip: skipUnless(
      nativeAvailable() && nativeAccept()?.acceptKeys !== undefined,
      'the native addon with acceptKeys',
    ),
  },
  () => {
    let echo: TestServer;
    before(async () => (echo = await startEcho()));
    after(() => echo.close());

    async function run(on: boolean, checks = true) {
      const r = await startServer(on, true, checks);
      const strict = await startServer(on, false, checks);
      const before = leanPathServed();
      const checkedBefore = leanPathChecked();
      try {
        // Relays: each key, twice from this address (recent), and a domain target.
        const replies = [await relay(r, KEYS[2]!, echo.port), await relay(r, KEYS[0]!, echo.port)];
        replies.push(await relay(r, KEYS[0]!, echo.port), await relay(r, KEYS[1]!, echo.port, 'localhost'));
        const relayed = leanPathServed() - before;
        // Refused or failed dials (a prompt FIN), a replay and a reflected salt (the idle FIN).
        const closedPort = await freePort();
        const data = randomBytes(20);
        const first = request(KEYS[1]!, '127.0.0.1', echo.port, data);
        const firstName = request(KEYS[2]!, 'localhost', echo.port, data);
        const k3 = KEYS[2]!;
        const m3 = getAeadMethod(k3.method as 'aes-256-gcm');
        const probes: [number, string, Buffer][] = [
          [r.port, 'closed port', request(KEYS[0]!, '127.0.0.1', closedPort, data)],
          [r.port, 'closed port, IPv6', request(KEYS[0]!, '::1', closedPort, data)],
          [r.port, 'port 0', request(KEYS[0]!, '127.0.0.1', 0, data)],
          [strict.port, 'private IPv4', request(KEYS[0]!, '127.0.0.1', echo.port, data)],
          [strict.port, 'private IPv6', request(KEYS[0]!, '::1', echo.port, data)],
          [strict.port, 'IPv4-mapped', request(KEYS[0]!, '::ffff:127.0.0.1', echo.port, data)],
          [strict.port, 'NAT64', request(KEYS[0]!, '64:ff9b::a00:1', echo.port, data)],
          [strict.port, 'IPv4-compatible', request(KEYS[1]!, '::a9fe:101', echo.port, data)],
          [strict.port, 'link-local', request(KEYS[0]!, '169.254.1.1', 80, data)],
          [r.port, 'first', first],
          [r.port, 'replay', first],
          [
            r.port,
            'reflected salt',
            request(k3, '127.0.0.1', echo.port, data, replies[0]!.subarray(0, m3.saltSize)),
          ],
          // Names (socks5h): a closed port, port 0, one not found, a replay, Mux.Cool's and
          // UDP-over-TCP's names (JS's full path: the addon must not check them either).
          [r.port, 'name, closed port', request(KEYS[0]!, 'localhost', closedPort, data)],
          [r.port, 'name, port 0', request(KEYS[0]!, 'localhost', 0, data)],
          [r.port, 'name not found', request(KEYS[1]!, 'nx.test', echo.port, data)],
          [r.port, 'first, name', firstName],
          [r.port, 'replay, name', firstName],
          [r.port, 'Mux.Cool name', request(KEYS[0]!, 'v1.mux.cool', 443, data)],
          [r.port, 'UDP-over-TCP name', request(KEYS[0]!, 'SP.V2.UDP-OVER-TCP.ARPA', 443, data)],
          [strict.port, 'name of a private address', request(KEYS[0]!, 'localhost', echo.port, data)],
        ];
        const results: ProbeResult[] = [];
        for (const [port, label, payload] of probes) results.push(await probe(port, label, payload));
        await waitFor(() => r.closed.length === 17 && strict.closed.length === 7, { timeoutMs: 3000 });

        // A relaying connection closed by key removal, another by closeKeyConnections.
        const open = async (k: RuntimeKey) => {
          const t = await openTestTunnel({
            port: r.port,
            method: k.method,
            password: k.secret,
            target: { host: '127.0.0.1', port: echo.port },
            initial: data,
          });
          assert.deepEqual(await t.read(data.length), data);
          return t;
        };
        const [t1, t2] = [await open(KEYS[0]!), await open(KEYS[1]!)];
        const live = r.server.connectionCount;
        const byKey = [...r.server.openConnections()].sort();
        r.server.applyKeyDelta({ upsert: [], remove: ['k2'] });
        const closedBy = [(await t2.closed).kind, r.server.closeKeyConnections('k1'), (await t1.closed).kind];
        await waitFor(() => r.closed.length === 19, { timeoutMs: 3000 });
        r.server.flushUsage();
        // Usage is counted once: what the sink got equals the closed events' bytes, per key.
        const sums = new Map<string, [number, number]>();
        for (const e of r.closed) {
          if (e.keyId === undefined) continue;
          const u = sums.get(e.keyId) ?? [0, 0];
          sums.set(e.keyId, [u[0] + e.bytesUp, u[1] + e.bytesDown]);
        }
        assert.deepEqual([...r.usage].sort(), [...sums].filter(([, u]) => u[0] + u[1] > 0).sort());
        const events = (x: Run) =>
          x.closed.map((e) => `${e.status} ${e.keyId ?? '-'} ${e.errno ?? ''} ${e.bytesUp}/${e.bytesDown}`);
        return {
          relayed,
          lean: leanPathServed() - before,
          checked: leanPathChecked() - checkedBefore,
          results: results.map(shape),
          closed: events(r).concat(events(strict)),
          auths: r.auth.concat(strict.auth).map((e) => `${e.keyId} tried ${e.keysTried} recent ${e.recent}`),
          live,
          byKey,
          closedBy,
          after: r.server.connectionCount,
        };
      } finally {
        await r.server.close();
        await strict.server.close();
        // Nothing left behind in the addon: no accepted connection, no relay.
        assert.deepEqual([nativeAcceptLive(), nativeRelay()?.relayLive()], [0, 0]);
      }
    }

    it('takes the path when on (LADDER_LEAN_PATH=0: off), and every outcome equals connection.ts’s', async () => {
      assert.deepEqual([leanPathFromEnv({}), leanPathFromEnv({ LADDER_LEAN_PATH: '0' })], [true, false]);
      assert.deepEqual(
        [nativeChecksFromEnv({}), nativeChecksFromEnv({ LADDER_NATIVE_CHECKS: '0' })],
        [true, false],
      );
      const on = await run(true);
      const js = await run(true, false);
      const off = await run(false);
      // On: the three IP relays and the name's, the two failed dials and the first packet, the
      // two kept open, and the names' failed dial, failed lookup, first packet and private address.
      assert.deepEqual([on.relayed, on.lean, on.checked], [4, 13, 13]);
      // JS takes the UDP-over-TCP name too (this server has no UDP: it is a name like any other);
      // the addon leaves it to JS's full path, which dials it the same.
      assert.deepEqual([js.relayed, js.lean, js.checked], [4, 14, 0], 'checked in JS');
      assert.deepEqual([off.relayed, off.lean, off.checked], [0, 0, 0], 'none when off');
      for (const other of [js, off]) {
        assert.deepEqual(on.results, other.results);
        assert.deepEqual(on.closed, other.closed);
        assert.deepEqual(on.auths, other.auths);
        assert.deepEqual(
          [on.live, on.byKey, on.closedBy, on.after],
          [other.live, other.byKey, other.closedBy, other.after],
        );
      }
      assert.deepEqual([on.live, on.after], [2, 0]);
      assert.deepEqual(on.closedBy, ['fin', 1, 'fin']);
      const statuses = on.closed.map((l) => l.split(' ').slice(0, 3).join(' '));
      for (const s of [
        'ERR_CONNECT k1 ECONNREFUSED',
        'ERR_FORBIDDEN k1 ',
        'ERR_REPLAY_CLIENT - ',
        'ERR_REPLAY_SERVER - ',
        'ERR_CLOSED k1 ',
        'ERR_CLOSED k2 ',
        'ERR_RESOLVE k2 ',
      ])
        assert.ok(statuses.includes(s), s);
      for (const p of on.results.filter((x) => !String(x[0]).startsWith('first')))
        assert.deepEqual(p.slice(1, 3), [0, 'FIN'], String(p[0]));
    });

    it('a connection its authenticated hook closes (the key closed in it) is closed on both paths', async () => {
      async function closedInHook(on: boolean): Promise<string> {
        const closed: ConnectionClosedEvent[] = [];
        const server: ShadowsocksServer = new ShadowsocksServer({
          keys: KEYS,
          allowPrivateDestinations: true,
          leanPath: on,
          timeouts: { idleMs: IDLE_MS, connectMs: 2000 },
          logger: silentLogger,
          hooks: {
            onAuthenticated: (e) => void server.closeKeyConnections(e.keyId),
            onConnectionClosed: (e) => closed.push(e),
          },
        });
        const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
        try {
          const p = await probe(
            port,
            'closed in the hook',
            request(KEYS[0]!, '127.0.0.1', echo.port, randomBytes(8)),
          );
          await waitFor(() => closed.length === 1, { timeoutMs: 2000 });
          return `${closed[0]!.status} ${closed[0]!.keyId} ${p.bytesBack} ${p.reaction} ${server.connectionCount}`;
        } finally {
          await server.close();
          assert.deepEqual([nativeAcceptLive(), nativeRelay()?.relayLive()], [0, 0]);
        }
      }
      const on = await closedInHook(true);
      assert.equal(on, 'ERR_CLOSED k1 0 FIN 0');
      assert.equal(await closedInHook(false), on);
    });

    it('a dial pending when its key is removed, and one timing out, end as on connection.ts; the removed key is refused', async () => {
      async function pending(on: boolean): Promise<string[]> {
        const closed: ConnectionClosedEvent[] = [];
        const server = new ShadowsocksServer({
          keys: KEYS,
          allowPrivateDestinations: true,
          leanPath: on,
          timeouts: { idleMs: IDLE_MS, connectMs: 600 },
          logger: silentLogger,
          hooks: { onConnectionClosed: (e) => closed.push(e) },
        });
        const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
        const hole = await blackholePort(nativeRelay()!);
        const before = leanPathServed();
        try {
          const go = (k: RuntimeKey, target: number, label: string) =>
            probe(port, label, request(k, '127.0.0.1', target, randomBytes(8)));
          // k2's dial hangs; k2 is removed (a data limit reached) while it is pending.
          const removed = go(KEYS[1]!, hole.port, 'removed while dialling');
          await waitFor(() => server.openConnections().get('k2') === 1, { timeoutMs: 2000 });
          const live = [nativeAcceptLive(), nativeRelay()!.relayLive(), server.connectionCount];
          server.applyKeyDelta({ upsert: [], remove: ['k2'] });
          // New connections of the removed key, in the same turn and after: refused as a probe.
          const refused = [go(KEYS[1]!, echo.port, 'removed key, same turn')];
          await new Promise((res) => setImmediate(res));
          refused.push(go(KEYS[1]!, echo.port, 'removed key, next turn'));
          const timedOut = await go(KEYS[0]!, hole.port, 'timed out');
          const results = [await removed, timedOut, ...(await Promise.all(refused))].map(shape);
          await waitFor(() => closed.length === 4, { timeoutMs: 3000 });
          const events = closed
            .map((e) => `${e.status} ${e.keyId ?? '-'} ${e.errno ?? ''} ${e.bytesUp}/${e.bytesDown}`)
            .sort();
          return [
            JSON.stringify(live),
            ...events,
            ...results.map((x) => x.join(' ')),
            `lean ${leanPathServed() - before}`,
          ];
        } finally {
          await server.close();
          hole.close();
          assert.deepEqual([nativeAcceptLive(), nativeRelay()?.relayLive()], [0, 0]);
        }
      }
      const on = await pending(true);
      const off = await pending(false);
      assert.deepEqual(on.slice(0, -1), off.slice(0, -1));
      assert.deepEqual([on.at(-1), off.at(-1)], ['lean 2', 'lean 0']);
      const want = [
        '[1,1,1]',
        'ERR_CIPHER - ',
        'ERR_CIPHER - ',
        'ERR_CLOSED k2 ',
        'ERR_CONNECT k1 ETIMEDOUT',
      ];
      want.forEach((w, i) => assert.ok(on[i]!.startsWith(w), `${on[i]} is ${w}...`));
    });

    it('a relay that a client leaves open ends at the idle timeout on both paths, with its bytes', async () => {
      async function idle(on: boolean): Promise<string> {
        const r = await startServer(on);
        try {
          const s = net.connect({ port: r.port, host: '127.0.0.1' });
          await new Promise((res) => s.once('connect', res));
          s.write(request(KEYS[0]!, '127.0.0.1', echo.port, randomBytes(10)));
          const t0 = Date.now();
          await new Promise((res) => s.once('close', res).on('data', () => {}));
          await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
          const e = r.closed[0]!;
          const ms = Date.now() - t0;
          return `${e.status} ${e.keyId} ${e.bytesUp}/${e.bytesDown} ${ms >= IDLE_MS * 0.8 && ms < IDLE_MS * 4}`;
        } finally {
          await r.server.close();
        }
      }
      const off = await idle(false);
      assert.equal(off.split(' ').at(-1), 'true');
      assert.equal(await idle(true), off);
    });
  },
);
