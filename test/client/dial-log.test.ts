/**
 * The log line of a tunnel that was not dialled: when every endpoint is avoided, the failover
 * dialler reaches no server, and the log says "tunnel not dialled" with why and when the first is
 * usable again, not "tunnel dial failed ERR_CONNECT" (which reads as a server that refused).
 * Control: the dial that did reach the (closed) port is logged as a failed dial with its errno,
 * and once what that errno means (nothing listens: is the server running?).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { FailoverDialer } from '../../src/client/routing/failover.js';
import type { Endpoint } from '../../src/client/routing/endpoints.js';
import { PickerDialer } from '../../src/client/picker.js';
import { logDialFailure } from '../../src/client/tunnel.js';
import { createLogger } from '../../src/shared/logger.js';
import { DirectDialer } from '../../src/transport/dialer.js';
import { systemClock } from '../../src/shared/clock.js';
import { RoutingDialer } from '../../src/client/routing-dialer.js';
import { Router } from '../../src/client/routing/router.js';
import { parseRuleList } from '../../src/client/routing/rules.js';

const DEST = { type: 'domain' as const, host: 'site.example', port: 443 };

test('every endpoint avoided: "tunnel not dialled", not "tunnel dial failed"', async () => {
  // A port that refuses: listen, note the port, close.
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));

  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const log = createLogger({ level: 'info', destination: out });
  const direct = new DirectDialer();
  let dials = 0;
  const A: Endpoint = { host: '127.0.0.1', port };
  const d = new FailoverDialer({
    endpoints: [A],
    clock: systemClock,
    residualMs: 60_000,
    lastResortAfterMs: 60_000,
    dialerFor: () => ({
      dial: (_dest, first, signal) => {
        dials++;
        return direct.dial({ type: 'ipv4', host: '127.0.0.1', port }, first, signal);
      },
    }),
  });
  for (let i = 0; i < 2; i++) {
    const err = await d.dial(DEST).then(
      () => assert.fail('dialled a closed port'),
      (e: unknown) => e,
    );
    logDialFailure(err, DEST, log);
  }
  assert.equal(dials, 1, 'the second call dialled nothing');
  const lines = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { msg: string; code?: string; errno?: string });
  assert.equal(lines.length, 3, text);
  assert.deepEqual([lines[0]!.msg, lines[0]!.errno], ['tunnel dial failed', 'ECONNREFUSED']);
  // What the errno means, once per process (the words `ladder probe --servers` uses).
  assert.match(
    lines[1]!.msg,
    /^the server refused the connection \(ECONNREFUSED\): nothing listens on its port \(is the server running\?/,
  );
  assert.match(
    lines[2]!.msg,
    /^tunnel not dialled: every server endpoint is avoided after a block; the first is usable again in \d+ s$/,
  );
  assert.equal(lines[2]!.code, 'ERR_CONNECT');
  assert.ok(!text.includes('site.example') && !text.includes('127.0.0.1'), 'no destination or server');
});

test('a key the key server refuses: "tunnel not dialled" with the refusal, nothing dialled', async () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const log = createLogger({ level: 'info', destination: out });
  let dials = 0;
  const picker = new PickerDialer({
    clock: systemClock,
    dialerFor: () => ({
      dial: () => {
        dials++;
        return Promise.reject(new Error('not reached'));
      },
    }),
  });
  picker.setEndpoints([{ host: '127.0.0.1', port: 9, method: 'aes-256-gcm', password: 'x' }]);
  const logged = async (): Promise<{ msg: string; code?: string }> => {
    text = '';
    const err = await picker.dial(DEST).then(
      () => assert.fail('dialled'),
      (e: unknown) => e,
    );
    logDialFailure(err, DEST, log);
    return JSON.parse(text.trim()) as { msg: string; code?: string };
  };
  picker.setRefusal('server says: Quota exceeded');
  const refused = await logged();
  assert.equal(
    refused.msg,
    "tunnel not dialled: the key's server refuses this key (server says: Quota exceeded)",
  );
  assert.equal(refused.code, 'ERR_CONNECT');
  assert.equal(dials, 0, 'nothing was dialled');
  // Control: no endpoint at all is also "not dialled", with its own reason.
  picker.setRefusal(undefined);
  picker.setEndpoints([]);
  assert.equal((await logged()).msg, 'tunnel not dialled: the key offers no usable server endpoint now');
});

test('a direct or fragment route that fails: "direct connection failed", not the server hint', async () => {
  // A port that refuses: listen, note the port, close.
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const closed = { type: 'ipv4' as const, host: '127.0.0.1', port };

  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const log = createLogger({ level: 'info', destination: out });
  const tunnel = { dial: () => Promise.reject(new Error('the tunnel is not used')) };
  for (const [mode, rules] of [
    ['direct', ''],
    ['proxy', 'ip-cidr,127.0.0.0/8,fragment'],
    ['auto', ''],
  ] as const) {
    text = '';
    const router = new Router({ mode, clock: systemClock, rules: parseRuleList(rules, 'rules.txt') });
    const d = new RoutingDialer({ router, tunnel });
    const err = await d.dial(closed, Buffer.from('GET / HTTP/1.1\r\n\r\n')).then(
      () => assert.fail('dialled a closed port'),
      (e: unknown) => e,
    );
    logDialFailure(err, closed, log);
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; errno?: string; route?: string });
    const route = rules ? 'fragment' : 'direct';
    assert.deepEqual(
      lines.map((l) => [l.msg, l.errno, l.route]),
      [
        [
          `${route} connection failed (the destination itself, not through the tunnel)`,
          'ECONNREFUSED',
          route,
        ],
      ],
      `${mode}: ${text}`,
    );
  }
});

test('an untrusted front certificate: the advice fits a gRPC key too (it has no v2ray-plugin options)', async () => {
  const { dialHint } = await import('../../src/client/dial-hint.js');
  const hint = dialHint('DEPTH_ZERO_SELF_SIGNED_CERT') ?? '';
  assert.match(
    hint,
    /\(a WebSocket or HTTPUpgrade ss:\/\/ key; .*\), or, for any key \(gRPC's too\), start the client with NODE_EXTRA_CA_CERTS=PATH$/,
  );
});
