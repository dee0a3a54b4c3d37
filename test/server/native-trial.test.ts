/**
 * The SIP004 key trial in one addon call (LADDER_NATIVE_TRIAL, on by default: aead.ts sip004Open,
 * native/stream_codec.cc): the key test and the matching key's decoder share one subkey
 * derivation; and the response encoder derived by the relay from the master key and salt
 * (LADDER_NATIVE_ENCODER, relayConnect). Every case runs with each on and off (the controls: the
 * test then a new decoder; a JS AeadEncoder): a wrong key, a replayed or reflected salt and a bad
 * length must get the same reaction and status, and both keys must relay and answer the same.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { cipher } from '../../src/protocol/shadowsocks/cipher.js';
import { deriveSubkey, evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { nativeAvailable } from '../../src/protocol/shadowsocks/native.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { nativeEncoderFromEnv, nativeTrialFromEnv } from '../../src/server/native-relay.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { silentLogger } from '../../src/shared/logger.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { probeOnce } from '../probing/prober.js';

const KEY = { id: 'k1', method: 'aes-256-gcm', secret: 'native-trial-pw' };
const KEY2 = { id: 'k2', method: 'aes-256-gcm', secret: 'native-trial-pw2' };
const IDLE_MS = 400;
const M = getAeadMethod('aes-256-gcm');

async function startServer(trial: boolean, encoder: boolean) {
  const closed: ConnectionClosedEvent[] = [];
  const server = new ShadowsocksServer({
    keys: [KEY, KEY2],
    allowPrivateDestinations: true,
    nativeTrial: trial,
    // The trial JS makes per key (the addon's trial at the accept: accept-trial.test.ts).
    acceptTrial: false,
    nativeEncoder: encoder,
    timeouts: { idleMs: IDLE_MS, connectMs: 2000 },
    logger: silentLogger,
    hooks: { onConnectionClosed: (e) => closed.push(e) },
  });
  const addr = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port: addr.port, closed };
}

/** A client's first bytes: salt, then [127.0.0.1:port][data] sealed under `secret`. */
function request(secret: string, port: number, data: Buffer, salt?: Buffer): Buffer {
  const addr = Buffer.from([1, 127, 0, 0, 1, port >> 8, port & 0xff]);
  return new AeadEncoder(M, evpBytesToKey(secret, M.keySize), salt).encode(Buffer.concat([addr, data]));
}

/** Send `wire`, read the reply until the server closes; the reply's salt and plaintext. */
async function exchange(
  port: number,
  wire: Buffer,
  secret: string,
): Promise<{ salt: Buffer; plain: Buffer }> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const got: Buffer[] = [];
  s.on('data', (b: Buffer) => got.push(b));
  s.write(wire);
  s.end();
  await new Promise((res, rej) => s.once('close', res).once('error', rej));
  const reply = Buffer.concat(got);
  const dec = new AeadDecoder(M, evpBytesToKey(secret, M.keySize));
  return { salt: reply.subarray(0, M.saltSize), plain: Buffer.concat(dec.push(reply)) };
}

const held = (port: number, label: string, payload: Buffer) =>
  probeOnce(port, { label, payload }, { halfClose: false, giveUpMs: IDLE_MS * 4 });

describe(
  'native key trial',
  { skip: skipUnless(nativeAvailable(), 'the native addon (npm run build:native)') },
  () => {
    let echo: TestServer;
    before(async () => {
      echo = await startEcho();
    });
    after(async () => {
      await echo.close();
    });

    it('LADDER_NATIVE_TRIAL and LADDER_NATIVE_ENCODER: on by default, 0 turns them off', () => {
      assert.equal(nativeTrialFromEnv({}), true);
      assert.equal(nativeTrialFromEnv({ LADDER_NATIVE_TRIAL: '0' }), false);
      assert.equal(nativeEncoderFromEnv({}), true);
      assert.equal(nativeEncoderFromEnv({ LADDER_NATIVE_ENCODER: '0' }), false);
    });

    for (const [trial, encoder] of [
      [true, true],
      [false, true],
      [true, false],
      [false, false],
    ] as const) {
      const which = `${trial ? 'trial in the addon' : 'test then decoder (control)'}, ${encoder ? 'encoder derived by the relay' : 'JS encoder (control)'}`;

      it(`${which}: both keys relay; wrong key, replay, reflected salt and bad length get the uniform reaction`, async () => {
        const r = await startServer(trial, encoder);
        // Which path ran: the addon's one-call trial is used exactly when it is on (the server is in
        // this process, so the backend's method can be counted).
        const opens = mock.method(cipher() as { sip004Open: (...a: unknown[]) => unknown }, 'sip004Open');
        try {
          const data = randomBytes(48);
          // The second key in trial order relays: the echo comes back under its key.
          const first = request(KEY2.secret, echo.port, data);
          const ok = await exchange(r.port, first, KEY2.secret);
          assert.deepEqual(ok.plain, data);
          const ok1 = await exchange(r.port, request(KEY.secret, echo.port, data), KEY.secret);
          assert.deepEqual(ok1.plain, data);
          await waitFor(() => r.closed.length === 2, { timeoutMs: 2000 });
          assert.deepEqual(r.closed.map((e) => [e.status, e.keyId]).sort(), [
            ['OK', 'k1'],
            ['OK', 'k2'],
          ]);

          // A reply's salt sent back as a request salt (reflection) under KEY2.
          const reflected = request(KEY2.secret, echo.port, data, ok.salt);
          const cases = await Promise.all([
            held(r.port, 'wrong key', request('not-a-key-here', echo.port, data)),
            held(r.port, 'replay of the first', first),
            held(r.port, 'reflected server salt', reflected),
            held(r.port, 'bad length', badLength(KEY.secret, 0x4000)),
          ]);
          assert.deepEqual(
            cases.map((p) => [p.label, p.bytesBack, p.reaction, p.ms >= IDLE_MS * 0.8 && p.ms < IDLE_MS * 3]),
            [
              ['wrong key', 0, 'FIN', true],
              ['replay of the first', 0, 'FIN', true],
              ['reflected server salt', 0, 'FIN', true],
              ['bad length', 0, 'FIN', true],
            ],
          );
          await waitFor(() => r.closed.length === 6, { timeoutMs: 2000 });
          assert.deepEqual(
            r.closed
              .slice(2)
              .map((e) => e.status)
              .sort(),
            ['ERR_CIPHER', 'ERR_PAYLOAD_SIZE', 'ERR_REPLAY_CLIENT', 'ERR_REPLAY_SERVER'],
          );
          const byStatus = new Map(r.closed.map((e) => [e.status, e]));
          assert.equal(byStatus.get('ERR_CIPHER')?.keyId, undefined, 'a wrong key names no key');
          assert.equal(byStatus.get('ERR_PAYLOAD_SIZE')?.keyId, 'k1', 'a bad length is the key’s');
          if (trial)
            assert.ok(opens.mock.callCount() >= 6, `the addon tried keys (${opens.mock.callCount()} calls)`);
          else assert.equal(opens.mock.callCount(), 0, 'no addon trial when it is off');
        } finally {
          opens.mock.restore();
          await r.server.close();
        }
      });
    }
  },
);

/** A salt and a length chunk saying `length` sealed correctly under `secret`, then garbage. */
function badLength(secret: string, length: number): Buffer {
  const salt = randomBytes(M.saltSize);
  const c = createCipheriv(
    'aes-256-gcm',
    deriveSubkey(evpBytesToKey(secret, M.keySize), salt),
    Buffer.alloc(12),
  );
  const sealed = Buffer.concat([
    c.update(Buffer.from([length >> 8, length & 0xff])),
    c.final(),
    c.getAuthTag(),
  ]);
  return Buffer.concat([salt, sealed, randomBytes(40)]);
}
