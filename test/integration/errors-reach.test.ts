/**
 * Issue 11, "errors that reach the person": a refused or silently dropped tunnel is explained in
 * one line at the default level on both sides, without the destination, the client's address or
 * a secret, and rate-limited so a flood (a scan, a retry loop) stays a few lines.
 *
 * In-process `ladder server` data plane and `ladder client` on loopback, each logging at info
 * into a captured stream.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { startClient, type ClientOptions } from '../../src/client/index.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { startDataPlane, type DataPlane, type DataPlaneOptions } from '../../src/server/index.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { createLogger } from '../../src/shared/logger.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';

const METHOD = 'aes-256-gcm';
const PASSWORD = 'reach-test-password-7f3a9c';
const KEY_ID = 'newcomer';

interface Captured {
  log: ReturnType<typeof createLogger>;
  /** Parsed JSON lines so far. */
  lines(): Array<Record<string, unknown>>;
  text(): string;
}

function capture(): Captured {
  const sink = new PassThrough();
  let text = '';
  sink.on('data', (d: Buffer) => (text += d.toString()));
  return {
    log: createLogger({ level: 'info', destination: sink }),
    lines: () =>
      text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    text: () => text,
  };
}

/** Every captured line without its timestamp (which could contain a port's digits by chance). */
function withoutTime(c: Captured): string {
  return c
    .lines()
    .map((l) => {
      const { time: _time, ...rest } = l;
      return JSON.stringify(rest);
    })
    .join('\n');
}

function assertNoLeak(c: Captured, what: string, secrets: readonly string[]): void {
  const text = withoutTime(c);
  for (const s of secrets) assert.ok(!text.includes(s), `${what} log leaks ${JSON.stringify(s)}:\n${text}`);
}

async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Write a request through the SOCKS5 proxy and wait until the connection closes. */
async function requestAndWaitClose(proxyPort: number, host: string, port: number, closeAfterMs?: number) {
  const s = await socks5Connect({ proxyPort, host, port });
  s.on('error', () => {});
  let got = 0;
  s.on('data', (d: Buffer) => (got += d.length));
  s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  if (closeAfterMs !== undefined) setTimeout(() => s.destroy(), closeAfterMs).unref();
  await closed;
  return got;
}

/** The server under test: one key, loopback, short timeouts, logging into `log` if given. */
function startServer(log?: Captured, extra: Partial<DataPlaneOptions> = {}): Promise<DataPlane> {
  return startDataPlane({
    keys: [{ id: KEY_ID, method: METHOD, secret: PASSWORD }],
    port: 0,
    host: '127.0.0.1',
    timeouts: { idleMs: 5_000, connectMs: 2_000 },
    ...(log ? { logger: log.log } : {}),
    ...extra,
  });
}

/** A client for `password` (default the server's key) on an ephemeral SOCKS5 port. */
function startClientFor(
  plane: DataPlane,
  log: Captured,
  password = PASSWORD,
  extra: Partial<ClientOptions> = {},
) {
  const key = formatSsUrl({ method: METHOD, password, host: '127.0.0.1', port: plane.address.port });
  return startClient({ key, socks: '127.0.0.1:0', log: log.log, ...extra });
}

const msgs = (c: Captured): string[] => c.lines().map((l) => String(l.msg));

describe('a refused private destination is explained on both sides', () => {
  let plane: DataPlane;
  let echo: TestServer;
  const server = capture();

  before(async () => {
    plane = await startServer(server);
    echo = await startEcho();
  });
  after(async () => {
    await plane.close();
    await echo.close();
  });

  test('server and client each log one plain line at info, with no destination or secret', async () => {
    const client = capture();
    const c = await startClientFor(plane, client);
    try {
      const got = await requestAndWaitClose(c.socksAddress!.port, '127.0.0.1', echo.port);
      assert.equal(got, 0, 'the application gets nothing (as before)');
      await waitFor(() => client.text().includes('closed it without data'), 2000, 'the client line');
    } finally {
      await c.close();
    }
    await waitFor(() => server.text().includes('private address'), 2000, 'the server line');

    const refusals = server.lines().filter((l) => String(l.msg).includes('private address'));
    assert.equal(refusals.length, 1);
    assert.equal(refusals[0]!.level, 30, 'info');
    assert.equal(
      refusals[0]!.msg,
      `refused a connection to a private address (loopback/LAN/link-local) for key "${KEY_ID}": start the server with --allow-private to allow it for a local test`,
    );

    const told = client.lines().filter((l) => String(l.msg).includes('without data'));
    assert.equal(told.length, 1);
    assert.equal(told[0]!.level, 30, 'info');
    assert.match(String(told[0]!.msg), /^the server accepted the connection but closed it without data: /);
    assert.match(String(told[0]!.msg), /--allow-private on the server/);

    const secrets = ['127.0.0.1', String(echo.port), PASSWORD];
    assertNoLeak(server, 'server', secrets);
    assertNoLeak(client, 'client', [...secrets, String(plane.address.port)]);
  });

  test('a destination that refuses is logged with the errno only', async () => {
    const refused = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const log = capture();
    const p = await startServer(log, { allowPrivateDestinations: true });
    try {
      const t = await openTestTunnel({
        port: p.address.port,
        method: METHOD,
        password: PASSWORD,
        target: { host: '127.0.0.1', port: refused },
        initial: Buffer.from('hi'),
      });
      await t.closed;
      await waitFor(() => log.text().includes('could not reach'), 2000, 'the dial failure line');
    } finally {
      await p.close();
    }
    assert.ok(
      msgs(log).includes(`could not reach the destination for key "${KEY_ID}": ECONNREFUSED`),
      log.text(),
    );
    assertNoLeak(log, 'server', ['127.0.0.1', String(refused), PASSWORD]);
  });
});

describe('server refusal lines are rate-limited', () => {
  test('100 refusals of one key: a bounded number of lines whose counts add up to 100', async () => {
    const log = capture();
    const plane = await startServer(log, { refusalLog: { repeatMs: 400 } });
    const started = Date.now();
    try {
      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(
          Array.from({ length: 10 }, async () => {
            const t = await openTestTunnel({
              port: plane.address.port,
              method: METHOD,
              password: PASSWORD,
              target: { host: '10.1.2.3', port: 80 },
              initial: Buffer.from('x'),
            });
            await t.closed;
          }),
        );
      }
      await waitFor(
        () => {
          const ls = log.lines().filter((l) => String(l.msg).startsWith('refused a connection'));
          return ls.reduce((n, l) => n + 1 + (typeof l.repeats === 'number' ? l.repeats : 0), 0) >= 100;
        },
        3000,
        'all 100 refusals counted',
      );
    } finally {
      await plane.close();
    }
    const elapsed = Date.now() - started;
    const lines = log.lines().filter((l) => String(l.msg).startsWith('refused a connection'));
    const firsts = lines.filter((l) => l.repeats === undefined);
    const counts = lines.filter((l) => typeof l.repeats === 'number');
    assert.equal(
      firsts.length + counts.reduce((n, l) => n + (l.repeats as number), 0),
      100,
      'every refusal is in a line or a count',
    );
    // At most one full line and one count line per window (plus one for the window in progress).
    const windows = Math.ceil(elapsed / 400) + 1;
    assert.ok(lines.length <= 2 * windows, `${lines.length} lines in ${elapsed} ms`);
    assert.ok(lines.length < 100 / 2, `${lines.length} lines for 100 refusals`);
    for (const l of counts) assert.match(String(l.msg), /\(\d+ more in the last 0\.4 s\)$/);
    assertNoLeak(log, 'server', ['10.1.2.3', PASSWORD]);
  });

  test('connections that match no key: one line, then one aggregate count per window', async () => {
    const log = capture();
    const plane = await startServer(log, { refusalLog: { unauthenticatedMs: 2000 } });
    try {
      // 30 connections with a wrong key (the server drains them; we close), 5 that send nothing.
      await Promise.all(
        Array.from({ length: 30 }, async () => {
          const t = await openTestTunnel({
            port: plane.address.port,
            method: METHOD,
            password: 'wrong-password',
            target: { host: 'example.com', port: 443 },
            initial: Buffer.from('hello'),
          });
          await new Promise((r) => setTimeout(r, 50));
          t.destroy();
        }),
      );
      await Promise.all(
        Array.from(
          { length: 5 },
          () =>
            new Promise<void>((resolve) => {
              const s = net.connect(plane.address.port, '127.0.0.1', () => s.end());
              s.on('error', () => {});
              s.on('close', () => resolve());
              s.resume();
            }),
        ),
      );
      await waitFor(
        () => log.text().includes('more connections did not authenticate'),
        3000,
        'the aggregate',
      );
    } finally {
      await plane.close();
    }
    const lines = log.lines().filter((l) => String(l.msg).includes('did not authenticate'));
    assert.equal(lines.length, 2, log.text());
    assert.match(
      String(lines[0]!.msg),
      /^a connection did not authenticate with any key \(wrong, disabled, expired/,
    );
    assert.equal(
      lines[1]!.msg,
      '29 more connections did not authenticate with any key in the last 2 s (wrong, disabled, expired or over-quota key, a key at its device limit, or probes)',
    );
    assert.equal(lines[1]!.level, 30);
    assertNoLeak(log, 'server', ['example.com', 'wrong-password', PASSWORD]);
  });
});

describe('the client says when the server never answers', () => {
  test('a key the server does not have: "no answer from the server" after the configured wait', async () => {
    const server = capture();
    const plane = await startServer(server);
    const client = capture();
    const wrong = 'a-disabled-key-password-91b2';
    const c = await startClientFor(plane, client, wrong, { noAnswerMs: 300 });
    try {
      const t0 = Date.now();
      const pending = requestAndWaitClose(c.socksAddress!.port, 'origin.example', 8099, 1200);
      await waitFor(() => client.text().includes('no answer from the server'), 3000, 'the client line');
      assert.ok(Date.now() - t0 >= 250, 'not before the wait');
      assert.equal(await pending, 0);
      await waitFor(() => server.text().includes('did not authenticate'), 2000, 'the server line');
    } finally {
      await c.close();
      await plane.close();
    }
    const told = client.lines().filter((l) => String(l.msg).startsWith('no answer'));
    assert.equal(told.length, 1, client.text());
    assert.equal(told[0]!.level, 30);
    assert.equal(
      told[0]!.msg,
      'no answer from the server in 0.3 s: the key may be disabled, expired or over quota, deleted or rotated (a new secret), or its password or method does not match the server (a mistyped key), or the server is not a Shadowsocks server for this key',
    );
    // The application's close after 1.2 s does not add a second line for the same connection.
    assert.ok(!client.text().includes('closed the connection without data'), client.text());
    assertNoLeak(client, 'client', ['origin.example', '8099', wrong, String(plane.address.port)]);
    assertNoLeak(server, 'server', ['origin.example', '8099', wrong]);
  });

  test('not a Shadowsocks server: bytes this key cannot open', async () => {
    // An HTTP-ish service that answers anything with a plaintext error.
    const other = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
    const port = (other.address() as net.AddressInfo).port;
    const client = capture();
    const key = formatSsUrl({ method: METHOD, password: PASSWORD, host: '127.0.0.1', port });
    const c = await startClient({ key, socks: '127.0.0.1:0', log: client.log, noAnswerMs: 2000 });
    try {
      await requestAndWaitClose(c.socksAddress!.port, 'origin.example', 80);
      await waitFor(() => client.text().includes('cannot decrypt'), 2000, 'the client line');
    } finally {
      await c.close();
      await new Promise<void>((r) => other.close(() => r()));
    }
    assertNoLeak(client, 'client', ['origin.example', PASSWORD, String(port)]);
  });

  test('repeats of the same finding are counted, not logged one by one', async () => {
    const plane = await startServer();
    const echo = await startEcho();
    const client = capture();
    const c = await startClientFor(plane, client);
    try {
      for (let i = 0; i < 20; i++) await requestAndWaitClose(c.socksAddress!.port, '127.0.0.1', echo.port);
    } finally {
      await c.close(); // reports the pending count
      await plane.close();
      await echo.close();
    }
    const lines = client.lines().filter((l) => String(l.msg).includes('without data'));
    assert.equal(lines.length, 2, client.text());
    assert.equal(lines[1]!.repeats, 19);
    assert.match(String(lines[1]!.msg), /\(19 more in the last 10 s\)$/);
  });
});
