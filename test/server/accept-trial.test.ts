/**
 * The SIP004 key trial at the accept (LADDER_ACCEPT_TRIAL, on by default: server/accept-trial.ts,
 * native/tcp_accept.cc acceptKeys): the addon tries the port's keys on the first read and the
 * connection asks its result instead of testing each key. Every case runs against a server with
 * it on and one with it off (the control: the JS walk calls sip004Open per key), and must end
 * the same: the same statuses, keys, trial counts and reactions (the probing cases: random
 * bytes, replays and altered replays of a real first packet, a reflected reply salt, a bad length,
 * a chunk that fails after the header). The counter shows which path ran.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { deriveSubkey, evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { nativeAvailable } from '../../src/protocol/shadowsocks/native.js';
import { acceptTrialFromEnv, acceptTrialsUsed, AcceptTrialKeys } from '../../src/server/accept-trial.js';
import { KeyRing } from '../../src/server/keys.js';
import type { AuthEvent, ConnectionClosedEvent } from '../../src/server/events.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { listenNative, nativeAccept } from '../../src/transport/native-stream.js';
import { fdOf, startEcho, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { probeOnce, randomProbes, replayProbes, type ProbeResult } from '../probing/prober.js';

const KEYS: RuntimeKey[] = [
  { id: 'k1', method: 'aes-256-gcm', secret: 'accept-trial-pw1' },
  { id: 'k2', method: 'aes-256-gcm', secret: 'accept-trial-pw2' },
  { id: 'k3', method: 'chacha20-ietf-poly1305', secret: 'accept-trial-pw3' },
];
const K2022: RuntimeKey = {
  id: 'n1',
  method: '2022-blake3-aes-256-gcm',
  secret: randomBytes(32).toString('base64'),
};
const IDLE_MS = 400;

interface Served {
  server: ShadowsocksServer;
  port: number;
  closed: ConnectionClosedEvent[];
  auth: AuthEvent[];
}

async function startServer(acceptTrial: boolean, keys: RuntimeKey[] = KEYS): Promise<Served> {
  const closed: ConnectionClosedEvent[] = [];
  const auth: AuthEvent[] = [];
  const server = new ShadowsocksServer({
    keys,
    allowPrivateDestinations: true,
    acceptTrial,
    timeouts: { idleMs: IDLE_MS, connectMs: 2000 },
    logger: silentLogger,
    hooks: { onConnectionClosed: (e) => closed.push(e), onAuthenticated: (e) => auth.push(e) },
  });
  const addr = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port: addr.port, closed, auth };
}

const methodOf = (k: RuntimeKey) => getAeadMethod(k.method as 'aes-256-gcm');
const masterOf = (k: RuntimeKey) => evpBytesToKey(k.secret, methodOf(k).keySize);

/** A client's first bytes under `k`: salt, [127.0.0.1:port][data] (an IP or a domain target). */
function request(k: RuntimeKey, port: number, data: Buffer, salt?: Buffer, domain = false): Buffer {
  const addr = domain
    ? Buffer.concat([Buffer.from([3, 9]), Buffer.from('localhost'), Buffer.from([port >> 8, port & 0xff])])
    : Buffer.from([1, 127, 0, 0, 1, port >> 8, port & 0xff]);
  return new AeadEncoder(methodOf(k), masterOf(k), salt).encode(Buffer.concat([addr, data]));
}

/** Send `parts` (a pause between them), half-close, read the reply until the server closes. */
async function exchange(
  port: number,
  parts: Buffer[],
  k: RuntimeKey,
): Promise<{ salt: Buffer; plain: Buffer }> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.setNoDelay(true);
  const got: Buffer[] = [];
  s.on('data', (b: Buffer) => got.push(b));
  await new Promise((res, rej) => s.once('connect', res).once('error', rej));
  for (const [i, p] of parts.entries()) {
    if (i > 0) await new Promise((res) => setTimeout(res, 30));
    s.write(p);
  }
  s.end();
  await new Promise((res, rej) => s.once('close', res).once('error', rej));
  const reply = Buffer.concat(got);
  const m = methodOf(k);
  return {
    salt: reply.subarray(0, m.saltSize),
    plain: Buffer.concat(new AeadDecoder(m, masterOf(k)).push(reply)),
  };
}

/** A salt and a length chunk saying `length` sealed correctly under `k`, then garbage. */
function badLength(k: RuntimeKey, length: number): Buffer {
  const m = methodOf(k);
  const salt = randomBytes(m.saltSize);
  const c = createCipheriv('aes-256-gcm', deriveSubkey(masterOf(k), salt), Buffer.alloc(12));
  const sealed = Buffer.concat([
    c.update(Buffer.from([length >> 8, length & 0xff])),
    c.final(),
    c.getAuthTag(),
  ]);
  return Buffer.concat([salt, sealed, randomBytes(40)]);
}

const held = (port: number, label: string, payload: Buffer): Promise<ProbeResult> =>
  probeOnce(port, { label, payload }, { halfClose: false, giveUpMs: IDLE_MS * 4 });

/** What must be equal with the trial on and off: reaction, bytes back, closed at the idle timeout. */
const shape = (p: ProbeResult) => [
  p.label,
  p.bytesBack,
  p.reaction,
  p.ms >= IDLE_MS * 0.8 && p.ms < IDLE_MS * 3,
];

describe(
  'SIP004 key trial at the accept',
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

    /** Every case on one server; what the test compares between on and off. */
    async function run(on: boolean) {
      const r = await startServer(on);
      const before = acceptTrialsUsed();
      try {
        const data = randomBytes(48);
        // Each key relays (the third in trial order, another method); a domain target; a first
        // packet in two writes (salt, then the rest: usually a first read too short to try,
        // so not counted: a loaded machine may read both at once).
        const first = request(KEYS[2]!, echo.port, data);
        const ok = [
          await exchange(r.port, [first], KEYS[2]!),
          await exchange(r.port, [request(KEYS[0]!, echo.port, data)], KEYS[0]!),
          await exchange(r.port, [request(KEYS[1]!, echo.port, data, undefined, true)], KEYS[1]!),
        ];
        const tried = acceptTrialsUsed() - before;
        const split = request(KEYS[1]!, echo.port, data);
        ok.push(await exchange(r.port, [split.subarray(0, 10), split.subarray(10)], KEYS[1]!));
        for (const e of ok) assert.deepEqual(e.plain, data);
        await waitFor(() => r.closed.length === 4, { timeoutMs: 2000 });
        const beforeProbes = acceptTrialsUsed();

        // The probing cases: random bytes of every length up to 100 and 221, replays of a real
        // first packet (identical and with bytes altered), the reply's salt reflected, a bad
        // length, and a sealed chunk after the header that does not open.
        const k1 = KEYS[0]!;
        const corrupt = request(k1, echo.port, data);
        corrupt[corrupt.length - 1]! ^= 0xff;
        const probes = [
          ...randomProbes(randomBytes),
          ...replayProbes(first, 'k3'),
          { label: 'reflected server salt', payload: request(KEYS[2]!, echo.port, data, ok[0]!.salt) },
          { label: 'bad length', payload: badLength(k1, 0x4000) },
          { label: 'chunk fails after the header', payload: corrupt },
        ];
        const results: ProbeResult[] = [];
        for (let i = 0; i < probes.length; i += 25) {
          const batch = probes.slice(i, i + 25);
          results.push(...(await Promise.all(batch.map((p) => held(r.port, p.label, p.payload)))));
        }
        await waitFor(() => r.closed.length === 4 + probes.length, { timeoutMs: 3000 });
        // Every probe's first read that held the longest salt + length chunk (50 bytes) was tried.
        const probesTried = acceptTrialsUsed() - beforeProbes;
        const whole = probes.filter((p) => p.payload.length >= 50).length;
        const statuses = r.closed.map((e) => `${e.status} ${e.keyId ?? '-'}`).sort();
        const auths = r.auth.map((e) => `${e.keyId} tried ${e.keysTried} recent ${e.recent}`).sort();
        return { results: results.map(shape), statuses, auths, tried, probesTried, whole };
      } finally {
        await r.server.close();
      }
    }

    it('takes the path when on (LADDER_ACCEPT_TRIAL=0: off), and every outcome equals the JS trial’s', async () => {
      assert.deepEqual(
        [acceptTrialFromEnv({}), acceptTrialFromEnv({ LADDER_ACCEPT_TRIAL: '0' })],
        [true, false],
      );
      const on = await run(true);
      const off = await run(false);
      // On: every connection whose first read held every key's salt + length chunk (all but the
      // split one and the shorter probes); off: none.
      assert.equal(on.tried, 3, 'the three whole first packets were tried at the accept');
      assert.equal(on.probesTried, on.whole);
      assert.deepEqual([off.tried, off.probesTried], [0, 0], 'none when off');
      assert.deepEqual(on.results, off.results);
      for (const p of on.results) assert.deepEqual(p.slice(1), [0, 'FIN', true], String(p[0]));
      assert.deepEqual(on.statuses, off.statuses);
      assert.deepEqual(on.auths, off.auths);
      assert.ok(on.statuses.includes('ERR_CIPHER k1'), 'the chunk after the header failed under k1');
      assert.ok(on.statuses.includes('ERR_PAYLOAD_SIZE k1'));
      assert.ok(on.statuses.includes('ERR_REPLAY_CLIENT -'));
      assert.ok(on.statuses.includes('ERR_REPLAY_SERVER -'));
    });

    it('two keys with one secret: the same key as the JS trial after a removal reorders the keys', async () => {
      // k2 and k3 share a secret. The JS walk tries the IP's recent key (k2) first; a removal
      // swaps k3 ahead of k2 in the key order and the addon forgets its recent keys then, so the
      // addon alone would name k3 (review13b).
      const dup: RuntimeKey[] = [
        { id: 'a', method: 'aes-256-gcm', secret: 'accept-trial-a' },
        { id: 'b', method: 'aes-256-gcm', secret: 'accept-trial-dup' },
        { id: 'c', method: 'aes-256-gcm', secret: 'accept-trial-dup' },
      ];
      async function twice(on: boolean): Promise<string[]> {
        const r = await startServer(on, dup);
        try {
          const data = randomBytes(16);
          assert.deepEqual(
            (await exchange(r.port, [request(dup[1]!, echo.port, data)], dup[1]!)).plain,
            data,
          );
          r.server.applyKeyDelta({ upsert: [], remove: ['a'] });
          await new Promise((res) => setImmediate(res));
          assert.deepEqual(
            (await exchange(r.port, [request(dup[1]!, echo.port, data)], dup[1]!)).plain,
            data,
          );
          return r.auth.map((e) => `${e.keyId} tried ${e.keysTried} recent ${e.recent}`);
        } finally {
          await r.server.close();
        }
      }
      const off = await twice(false);
      assert.deepEqual(off, ['b tried 2 recent false', 'b tried 1 recent true']);
      assert.deepEqual(await twice(true), off);
    });

    it('a first read of exactly salt + length chunk, or ending inside the first payload, relays', async () => {
      const r = await startServer(true);
      try {
        const data = randomBytes(300);
        const k = KEYS[1]!;
        // 50: salt (32) + sealed length (18), nothing after; 60: 10 bytes into the payload; one
        // byte short of the whole (a new salt each: the same one again is a replay).
        for (const cut of [50, 60, -1]) {
          const first = request(k, echo.port, data);
          const e = await exchange(r.port, [first.subarray(0, cut), first.subarray(cut)], k);
          assert.deepEqual(e.plain, data, `cut at ${cut}`);
        }
        await waitFor(() => r.closed.length === 3, { timeoutMs: 2000 });
        assert.deepEqual(
          r.closed.map((c) => `${c.status} ${c.keyId}`),
          ['OK k2', 'OK k2', 'OK k2'],
        );
      } finally {
        await r.server.close();
      }
    });

    it('a list the addon refuses leaves the trial to JS, with no exception (after a change too)', async () => {
      const ring = new KeyRing();
      ring.set(KEYS);
      let calls = 0;
      const refuse = (methods?: Int32Array): void => {
        calls++;
        if (methods) throw new Error('acceptKeys: each key must be a Uint8Array as long as its method');
      };
      const keys = new AcceptTrialKeys(ring, refuse);
      keys.changed();
      await new Promise((res) => setImmediate(res));
      assert.equal(calls, 3, 'load, clear, reload');
      const t = { index: 0, codec: undefined, info: undefined, after: undefined };
      assert.equal(keys.resolve(t, randomBytes(64)), undefined, 'no trial from a list never loaded');
    });

    it('acceptKeys refuses a key of the wrong length or an unknown method, in one line', async () => {
      const listener = net.createServer();
      await new Promise<void>((res) => listener.listen(0, '127.0.0.1', res));
      const handle = listenNative(nativeAccept()!, fdOf(listener), () => undefined);
      listener.close();
      try {
        const why = /acceptKeys: each key must be a Uint8Array as long as its method's key/;
        assert.throws(() => handle.keys!(Int32Array.of(1), [new Uint8Array(16)]), why); // aes-256-gcm: 32
        assert.throws(() => handle.keys!(Int32Array.of(7), [new Uint8Array(32)]), why);
        assert.throws(() => handle.keys!(Int32Array.of(0, 0), [new Uint8Array(32)]), /acceptKeys\(listener/);
        handle.keys!(Int32Array.of(1), [new Uint8Array(32)]);
        handle.keys!(); // off again
      } finally {
        handle.close();
      }
    });

    it('is not used for a key set with a 2022 key; follows key changes', async () => {
      const mixed = await startServer(true, [...KEYS, K2022]);
      try {
        const n = acceptTrialsUsed();
        const data = randomBytes(16);
        const e = await exchange(mixed.port, [request(KEYS[0]!, echo.port, data)], KEYS[0]!);
        assert.deepEqual(e.plain, data);
        assert.equal(acceptTrialsUsed(), n, 'a mixed key set is tried in JS');
        // Down to SIP004 keys: the addon gets the list after this turn; right after the change the
        // connection is tried in JS, and either way with the new keys.
        const k4: RuntimeKey = { id: 'k4', method: 'aes-128-gcm', secret: 'accept-trial-pw4' };
        mixed.server.setKeys([KEYS[1]!, k4]);
        const now = exchange(mixed.port, [request(k4, echo.port, data)], k4);
        assert.deepEqual((await now).plain, data);
        await new Promise((res) => setImmediate(res));
        const m = acceptTrialsUsed();
        assert.deepEqual((await exchange(mixed.port, [request(k4, echo.port, data)], k4)).plain, data);
        assert.equal(acceptTrialsUsed(), m + 1, 'tried at the accept once the list is loaded');
        const gone = await held(mixed.port, 'removed key', request(KEYS[0]!, echo.port, data));
        assert.deepEqual(shape(gone).slice(1), [0, 'FIN', true]);
        await waitFor(() => mixed.closed.length === 4, { timeoutMs: 2000 });
        assert.deepEqual(
          mixed.closed.map((c) => `${c.status} ${c.keyId ?? '-'}`),
          ['OK k1', 'OK k4', 'OK k4', 'ERR_CIPHER -'],
        );
      } finally {
        await mixed.server.close();
      }
    });
  },
);
