import { test, before, after } from 'node:test';
import { which } from '../helpers/peers.js';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { readRecordHeader, RECORD_HEADER } from '../../src/protocol/tls/clienthello.js';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import { DirectDialer, type Dialer } from '../../src/transport/dialer.js';
import {
  FragmentDialer,
  fragmentingSocket,
  type TlsFragmentOptions,
} from '../../src/transport/tls-fragment.js';
import { connect } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';

const NAME = 'blocked.example';

// openssl makes the test certificate: skip loudly without it, fail in CI.
const SKIP = skipUnless(which('openssl') !== undefined, 'openssl CLI missing (apt-get install openssl)');
let dir = '';
let key: Buffer;
let cert: Buffer;

before(() => {
  if (SKIP) return;
  dir = mkdtempSync(join(tmpdir(), 'ladder-tlsfrag-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(dir, 'k.pem'),
      '-out',
      join(dir, 'c.pem'),
      '-days',
      '1',
      '-subj',
      `/CN=${NAME}`,
      '-addext',
      `subjectAltName=DNS:${NAME}`,
    ],
    { stdio: 'ignore', timeout: 20_000 },
  );
  key = readFileSync(join(dir, 'k.pem'));
  cert = readFileSync(join(dir, 'c.pem'));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Capture {
  /** Client->server bytes in arrival order, with the chunk boundaries the proxy saw. */
  chunks: Buffer[];
}

/** TLS echo server behind a raw TCP proxy that records what the client sent. */
async function setup(): Promise<{
  proxyPort: number;
  capture: Capture;
  serverNames: string[];
  close: () => void;
}> {
  const serverNames: string[] = [];
  const server = tls.createServer({ key, cert }, (s) => {
    serverNames.push((s as tls.TLSSocket & { servername?: string }).servername ?? '');
    s.on('error', () => {});
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const serverPort = (server.address() as net.AddressInfo).port;
  const capture: Capture = { chunks: [] };
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((c) => {
    const up = net.connect(serverPort, '127.0.0.1');
    sockets.add(c).add(up);
    c.on('data', (d: Buffer) => {
      capture.chunks.push(Buffer.from(d));
      up.write(d);
    });
    up.pipe(c);
    c.on('end', () => up.end());
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const proxyPort = (proxy.address() as net.AddressInfo).port;
  return {
    proxyPort,
    capture,
    serverNames,
    close: () => {
      for (const s of sockets) s.destroy();
      proxy.close();
      server.close();
    },
  };
}

async function handshakeAndEcho(proxyPort: number, frag: TlsFragmentOptions | undefined): Promise<string> {
  const raw = net.connect(proxyPort, '127.0.0.1');
  raw.setNoDelay(true);
  await once(raw, 'connect');
  const socket = frag ? fragmentingSocket(raw, frag) : raw;
  const t = tls.connect({ socket, servername: NAME, ca: cert });
  const timer = setTimeout(() => t.destroy(new Error('test timeout')), 10_000);
  try {
    await once(t, 'secureConnect');
    t.write('ping through tls');
    const [data] = (await once(t, 'data')) as [Buffer];
    return data.toString();
  } finally {
    clearTimeout(timer);
    t.destroy();
  }
}

function firstRecord(chunks: Buffer[]): Buffer {
  const all = Buffer.concat(chunks);
  const h = readRecordHeader(all)!;
  return all.subarray(0, RECORD_HEADER + h.length);
}

test(
  'negative control: an unfragmented ClientHello carries the whole SNI in its first record and first TCP chunk',
  { skip: SKIP },
  async () => {
    const env = await setup();
    try {
      assert.equal(await handshakeAndEcho(env.proxyPort, undefined), 'ping through tls');
      assert.ok(firstRecord(env.capture.chunks).includes(Buffer.from(NAME)));
      assert.ok(env.capture.chunks[0]!.includes(Buffer.from(NAME)));
      assert.deepEqual(env.serverNames, [NAME]);
    } finally {
      env.close();
    }
  },
);

for (const opts of [
  { strategy: 'name-middle', segments: 'per-record', delayMs: 20 },
  { strategy: 'both', segments: 'misaligned', delayMs: 5, extraCuts: 3 },
  { strategy: 'name-middle', segments: 'single' },
] as const satisfies readonly TlsFragmentOptions[]) {
  test(
    `fragmented ClientHello (${JSON.stringify(opts)}): handshake completes, data flows, SNI never whole in the first record`,
    { skip: SKIP },
    async () => {
      const env = await setup();
      try {
        let info: { fragmented: boolean; records: number; writes: number } | undefined;
        const echoed = await handshakeAndEcho(env.proxyPort, { ...opts, onHello: (i) => (info = i) });
        assert.equal(echoed, 'ping through tls');
        assert.equal(info?.fragmented, true);
        assert.ok(info.records >= 2);
        // The server reassembled the name from the records.
        assert.deepEqual(env.serverNames, [NAME]);
        const rec = firstRecord(env.capture.chunks);
        assert.ok(!rec.includes(Buffer.from(NAME)), 'first record holds the whole SNI');
        if (opts.segments !== 'single') {
          // With separate, delayed writes the first TCP chunk the proxy read lacks the name too.
          assert.ok(
            !env.capture.chunks[0]!.includes(Buffer.from(NAME)),
            'first TCP chunk holds the whole SNI',
          );
        }
      } finally {
        env.close();
      }
    },
  );
}

/** The proxy path: the application's own ClientHello arrives as the dial's first data. */
async function viaDialer(proxyPort: number, dialer: Dialer): Promise<string> {
  const stream = new DialerStream(dialer, { type: 'ipv4', host: '127.0.0.1', port: proxyPort });
  const t = tls.connect({ socket: stream as unknown as net.Socket, servername: NAME, ca: cert });
  const timer = setTimeout(() => t.destroy(new Error('test timeout')), 10_000);
  try {
    await once(t, 'secureConnect');
    t.write('ping through tls');
    const [data] = (await once(t, 'data')) as [Buffer];
    return data.toString();
  } finally {
    clearTimeout(timer);
    t.destroy();
  }
}

test(
  'FragmentDialer (route "fragment"): the application\'s ClientHello leaves fragmented; DirectDialer control does not',
  { skip: SKIP },
  async () => {
    const env = await setup();
    try {
      let info: { fragmented: boolean; records: number } | undefined;
      assert.equal(
        await viaDialer(env.proxyPort, new FragmentDialer({ delayMs: 10, onHello: (i) => (info = i) })),
        'ping through tls',
      );
      assert.equal(info?.fragmented, true);
      assert.ok(!firstRecord(env.capture.chunks).includes(Buffer.from(NAME)));
      assert.ok(!env.capture.chunks[0]!.includes(Buffer.from(NAME)));
      env.capture.chunks.length = 0;
      assert.equal(await viaDialer(env.proxyPort, new DirectDialer()), 'ping through tls');
      assert.ok(firstRecord(env.capture.chunks).includes(Buffer.from(NAME)));
      assert.deepEqual(env.serverNames, [NAME, NAME]);
    } finally {
      env.close();
    }
  },
);

test('non-TLS first bytes pass through unchanged', { skip: SKIP }, async () => {
  const server = net.createServer((s) => s.pipe(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const raw = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(raw, 'connect');
  let info: { fragmented: boolean } | undefined;
  const s = fragmentingSocket(raw, { onHello: (i) => (info = i) });
  s.write('GET / HTTP/1.1\r\n\r\n');
  const [d] = (await once(s, 'data')) as [Buffer];
  assert.equal(d.toString(), 'GET / HTTP/1.1\r\n\r\n');
  assert.equal(info?.fragmented, false);
  s.end();
  await once(s, 'end');
  s.destroy();
  server.close();
});

test('interop: a fragmented ClientHello completes against OpenSSL s_server', { skip: SKIP }, async (t) => {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const child = spawn(
    'openssl',
    [
      's_server',
      '-accept',
      `127.0.0.1:${port}`,
      '-cert',
      join(dir, 'c.pem'),
      '-key',
      join(dir, 'k.pem'),
      '-rev',
      '-quiet',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  // Retry the TCP connect until s_server listens (bounded: 5 s).
  const raw = await waitFor(() => connect(port).catch(() => undefined), {
    timeoutMs: 5000,
    intervalMs: 100,
    message: () => `openssl s_server accepting on ${port}; its output:\n${out}`,
  });
  raw.on('error', () => {});
  let info: { fragmented: boolean; records: number } | undefined;
  const tsock = tls.connect({
    socket: fragmentingSocket(raw, { delayMs: 5, onHello: (i) => (info = i) }),
    servername: NAME,
    ca: cert,
  });
  tsock.on('error', () => {});
  await once(tsock, 'secureConnect');
  assert.equal(info?.fragmented, true);
  assert.ok(info.records >= 2);
  tsock.write('abc\n');
  const [d] = (await once(tsock, 'data')) as [Buffer];
  const reply = d.toString();
  tsock.destroy();
  assert.equal(reply.trim(), 'cba', out);
});
