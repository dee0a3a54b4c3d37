/**
 * Fuzzing what is read from files: the server config (JSON), the client config (JSON, with ss://
 * keys and SIP008-style servers) and the replay-filter state file (every format generation;
 * mutated bodies are re-checksummed so the parser behind the checksum is reached). Contract: a
 * config is accepted or refused with one line naming the file and the field, never a password;
 * a state file loads, or the start is refused with a ReplayStateError, never another throw; what
 * loads remembers no salt longer than the protocol's window. Method and counts: test/fuzz/fuzz.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { ConfigError, parseServerConfigText } from '../../src/config/server.js';
import { parseClientConfig } from '../../src/config/client.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { memoryReplayStore, ReplayState, ReplayStateError } from '../../src/server/replay-state.js';
import { SALT_TTL_MS } from '../../src/protocol/shadowsocks/replay.js';
import { byteCases, fuzz, show, textCases } from './fuzz.js';

const SECRET = 'Sekrit-pa55word';

function noSecret(input: string, err: Error): void {
  assert.ok(!err.message.includes(SECRET), `error echoes the password: ${err.message} (input ${input})`);
  assert.ok(err.message.startsWith('config.json: '), `error does not name the file: ${err.message}`);
}

const SERVER_SAMPLES = [
  JSON.stringify(
    {
      port: 8388,
      host: '0.0.0.0',
      keys: [
        { id: 'alice', method: 'chacha20-ietf-poly1305', password: SECRET },
        { id: 'bob', method: '2022-blake3-aes-128-gcm', password: Buffer.alloc(16, 3).toString('base64') },
      ],
      timeouts: { idleSeconds: 300, connectSeconds: 10 },
      replayCapacity: 1000,
      udp: true,
    },
    null,
    2,
  ),
  JSON.stringify({
    keys: [{ id: 'k', method: 'aes-256-gcm', password: SECRET }],
    web: { listen: '127.0.0.1:8443', path: '/ws' },
  }),
];

test('fuzz: server config file: accepted, or one line naming file and field', () => {
  const s = fuzz(
    'parseServerConfigText',
    textCases('server-config', SERVER_SAMPLES, 2500),
    (t) => parseServerConfigText(t, 'config.json'),
    {
      typed: (e) => e instanceof ConfigError,
      oneLine: true,
      refused: noSecret,
    },
  );
  assert.ok(s.refused > 500, JSON.stringify(s));
});

const CLIENT_SAMPLES = [
  JSON.stringify(
    {
      keys: [
        `ss://${Buffer.from(`chacha20-ietf-poly1305:${SECRET}`).toString('base64url')}@192.0.2.1:8388#a`,
      ],
      socks: '127.0.0.1:1080',
      http: '127.0.0.1:8118',
      route: 'auto',
      dnsMode: 'tunnel',
      auth: 'alice:pw',
      residualSeconds: 180,
    },
    null,
    2,
  ),
  JSON.stringify({
    version: 1,
    servers: [
      {
        server: 'h.example',
        server_port: 443,
        method: 'aes-256-gcm',
        password: SECRET,
        plugin: 'v2ray-plugin',
        plugin_opts: 'tls;host=h.example;path=/p',
        remarks: 'x',
      },
    ],
    udp: true,
  }),
];

test('fuzz: client config file: accepted, or one line naming file and field', () => {
  const s = fuzz(
    'parseClientConfig',
    textCases('client-config', CLIENT_SAMPLES, 2500),
    (t) => parseClientConfig(t, 'config.json'),
    {
      typed: (e) => e instanceof ConfigError,
      oneLine: true,
      refused: noSecret,
    },
  );
  assert.ok(s.refused > 500, JSON.stringify(s));
});

const NOW = 1_800_000_000_000;

/** A saved state (LRS3) with salts in all three filters. */
async function savedState(): Promise<Buffer> {
  const clock = new ManualClock(NOW);
  const store = memoryReplayStore();
  const st = new ReplayState({ clock, log: silentLogger, capacity: 50, store });
  for (let i = 0; i < 3; i++) {
    st.clientSalts.add(Buffer.alloc(32, i + 1));
    st.serverSalts.add(Buffer.alloc(16, i + 9));
    st.salts2022.add(Buffer.alloc(16, i + 20), NOW);
  }
  st.noteSalt2022();
  await st.save();
  return store.data!;
}

const resum = (body: Buffer): Buffer => Buffer.concat([body, createHash('sha256').update(body).digest()]);

test('fuzz: replay state file: loads, or a ReplayStateError; nothing remembered past the window', async () => {
  const good = await savedState();
  const body = good.subarray(0, good.length - 32);
  const lrs2 = Buffer.from(body);
  lrs2.write('LRS2', 0, 'latin1');
  const cases: Buffer[] = [];
  // LRS3 mutated then re-checksummed (the parser proper), raw LRS2 mutants, and a few raw LRS3 ones.
  for (const c of byteCases('replay3', [body], 600))
    cases.push(c.length >= 4 && c.toString('latin1', 0, 4) === 'LRS3' ? resum(c) : c);
  for (const c of byteCases('replay2', [lrs2], 300)) cases.push(c);
  let loaded = 0;
  for (const [n, data] of cases.entries()) {
    const clock = new ManualClock(NOW + 1000);
    const store = memoryReplayStore();
    store.data = data;
    const st = new ReplayState({ clock, log: silentLogger, capacity: 50, store });
    try {
      await st.load();
      loaded++;
    } catch (err) {
      if (!(err instanceof ReplayStateError))
        assert.fail(`case ${n}: untyped ${String(err)} for ${show(data)}`);
      assert.ok(!/[\r\n]/.test(err.message), `case ${n}: multi-line ${JSON.stringify(err.message)}`);
      continue;
    }
    // What loaded expires within the protocol's window: a damaged expiry must not pin a salt forever.
    for (const [, exp] of st.salts2022.export(clock.now()))
      assert.ok(
        exp <= clock.now() + SALT_TTL_MS,
        `case ${n}: 2022 salt kept until ${exp} from ${show(data)}`,
      );
    assert.ok(st.clientSalts.size <= 100 && st.serverSalts.size <= 100, `case ${n}: filters past capacity`);
  }
  assert.ok(loaded > 10, `only ${loaded} cases loaded`);
});

test('regressions found by the fuzzer: files', async () => {
  // A field name with a CR made a two-line message.
  assert.throws(
    () =>
      parseServerConfigText(
        `{"keys":[{"id":"a","method":"aes-256-gcm","passw\\rd":"${SECRET}"}]}`,
        'config.json',
      ),
    (e: Error) =>
      e instanceof ConfigError && e.message.includes('"passw\\x0dd"') && !/[\r\n]/.test(e.message),
  );
  assert.throws(
    () => parseClientConfig('{"udp":tru\ne}', 'config.json'),
    (e: Error) =>
      e instanceof ConfigError && e.message === "config.json: line 1, column 11: unexpected token '\\x0a'",
  );
  // A 2022 salt whose saved expiry is far in the future was remembered until then.
  const good = await savedState();
  const body = Buffer.from(good.subarray(0, good.length - 32));
  const at = body.length - 8; // the last entry's f64 expiry
  body.writeDoubleBE(NOW + 365 * 86_400_000, at);
  const store = memoryReplayStore();
  store.data = resum(body);
  const clock = new ManualClock(NOW + 1000);
  const st = new ReplayState({ clock, log: silentLogger, capacity: 50, store });
  await st.load();
  assert.equal(st.salts2022.size, 3);
  for (const [, exp] of st.salts2022.export(clock.now())) assert.ok(exp <= clock.now() + SALT_TTL_MS);
});
