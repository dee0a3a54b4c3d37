// The SOCKS5 codecs against real SOCKS5 clients: the `socks` npm package (also for its pure UDP
// frame helpers) and curl, talking to a minimal loopback server built from the codecs alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { SocksClient } from 'socks';
import { ProtocolError } from '../../src/protocol/errors.js';
import type { SocksAddress } from '../../src/protocol/socks5/address.js';
import {
  AUTH_NO_ACCEPTABLE,
  AUTH_NONE,
  AUTH_USERPASS,
  CMD_CONNECT,
  REP,
  encodeMethodSelection,
  encodeReply,
  encodeUdpHeader,
  encodeUserPassReply,
  parseGreeting,
  parseRequest,
  parseUdpDatagram,
  parseUserPassAuth,
} from '../../src/protocol/socks5/socks5.js';
import { skipUnless } from '../helpers/prereq.js';

const norm6 = (h: string) => (h.includes(':') ? new URL(`http://[${h}]/`).hostname.slice(1, -1) : h);

test('UDP frames agree with the socks package (both directions)', () => {
  const hosts: SocksAddress[] = [
    { type: 'ipv4', host: '10.1.2.3', port: 53 },
    { type: 'ipv6', host: '2001:db8::53', port: 5353 },
    { type: 'domain', host: 'dns.example', port: 853 },
  ];
  for (const a of hosts) {
    const data = Buffer.from(`query for ${a.host}`);
    const theirs = SocksClient.createUDPFrame({
      remoteHost: { host: a.host, port: a.port },
      data,
      frameNumber: 0,
    });
    const p = parseUdpDatagram(theirs);
    assert.deepEqual(p, { frag: 0, address: a, data });
    const ours = Buffer.concat([encodeUdpHeader(a), data]);
    assert.deepEqual(ours, theirs);
    const back = SocksClient.parseUDPFrame(ours);
    assert.equal(norm6(back.remoteHost.host), a.host);
    assert.equal(back.remoteHost.port, a.port);
    assert.deepEqual(back.data, data);
  }
});

interface Seen {
  methods?: number[];
  user?: { username: string; password: string };
  command?: number;
  address?: SocksAddress;
  error?: string;
}

/** A SOCKS5 server made only of the codecs: answers CONNECT with success, then an HTTP reply. */
function miniServer(
  creds: { username: string; password: string } | undefined,
  seen: Seen[],
): Promise<Server> {
  const server = createServer((sock: Socket) => {
    const s: Seen = {};
    seen.push(s);
    let buf = Buffer.alloc(0);
    let stage: 'greeting' | 'auth' | 'request' | 'data' = 'greeting';
    sock.setTimeout(5000, () => sock.destroy());
    sock.on('error', () => undefined);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        for (;;) {
          if (stage === 'greeting') {
            const g = parseGreeting(buf);
            if (!g) return;
            buf = buf.subarray(g.length);
            s.methods = g.methods;
            const want = creds ? AUTH_USERPASS : AUTH_NONE;
            if (!g.methods.includes(want)) {
              sock.end(encodeMethodSelection(AUTH_NO_ACCEPTABLE));
              return;
            }
            sock.write(encodeMethodSelection(want));
            stage = creds ? 'auth' : 'request';
          } else if (stage === 'auth') {
            const a = parseUserPassAuth(buf);
            if (!a) return;
            buf = buf.subarray(a.length);
            s.user = { username: a.username, password: a.password };
            const ok = a.username === creds!.username && a.password === creds!.password;
            sock.write(encodeUserPassReply(ok));
            if (!ok) return void sock.end();
            stage = 'request';
          } else if (stage === 'request') {
            const r = parseRequest(buf);
            if (!r) return;
            buf = buf.subarray(r.length);
            s.command = r.command;
            s.address = r.address;
            if (r.command !== CMD_CONNECT) return void sock.end(encodeReply(REP.COMMAND_NOT_SUPPORTED));
            sock.write(encodeReply(REP.SUCCEEDED, { type: 'ipv4', host: '127.0.0.1', port: 4242 }));
            stage = 'data';
          } else {
            if (buf.includes('\r\n\r\n')) {
              sock.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
            }
            return;
          }
        }
      } catch (err) {
        s.error = err instanceof ProtocolError ? err.code : String(err);
        sock.destroy();
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('the socks package as client: no auth and username/password, domain/IPv4/IPv6 targets', async () => {
  for (const creds of [undefined, { username: 'alice', password: 'pä ss:@' }]) {
    const seen: Seen[] = [];
    const server = await miniServer(creds, seen);
    const port = (server.address() as AddressInfo).port;
    try {
      for (const [host, type] of [
        ['example.com', 'domain'],
        ['192.0.2.7', 'ipv4'],
        ['2001:db8::7', 'ipv6'],
      ] as const) {
        const { socket, remoteHost } = await SocksClient.createConnection({
          proxy: {
            host: '127.0.0.1',
            port,
            type: 5,
            ...(creds ? { userId: creds.username, password: creds.password } : {}),
          },
          command: 'connect',
          destination: { host, port: 8080 },
          timeout: 5000,
        });
        assert.equal(remoteHost?.host, '127.0.0.1');
        assert.equal(remoteHost?.port, 4242);
        socket.destroy();
        const s = seen.at(-1)!;
        assert.equal(s.error, undefined);
        assert.deepEqual(s.address, { type, host, port: 8080 });
        assert.equal(s.command, CMD_CONNECT);
        if (creds) assert.deepEqual(s.user, creds);
      }
    } finally {
      server.close();
    }
  }
});

// curl is optional locally (skipped loudly) but required in CI.
const hasCurl = ['/usr/bin/curl', '/usr/local/bin/curl', '/bin/curl'].some((p) => existsSync(p));

test(
  'curl as client (socks5h, with and without credentials)',
  { skip: skipUnless(hasCurl, 'curl not installed (apt-get install curl)') },
  async () => {
    const curl = (args: string[]) =>
      new Promise<string>((resolve, reject) =>
        execFile('curl', ['-sS', '--max-time', '5', ...args], { timeout: 8000 }, (err, stdout) =>
          err ? reject(err) : resolve(stdout),
        ),
      );
    for (const creds of [undefined, { username: 'bob', password: 's3cret' }]) {
      const seen: Seen[] = [];
      const server = await miniServer(creds, seen);
      const port = (server.address() as AddressInfo).port;
      try {
        const userArg = creds ? ['--proxy-user', `${creds.username}:${creds.password}`] : [];
        const body = await curl([
          ...userArg,
          '--socks5-hostname',
          `127.0.0.1:${port}`,
          'http://blocked.example:81/',
        ]);
        assert.equal(body, 'hello');
        assert.deepEqual(seen[0]!.address, { type: 'domain', host: 'blocked.example', port: 81 });
        if (creds) assert.deepEqual(seen[0]!.user, creds);
        const body6 = await curl([
          ...userArg,
          '--socks5-hostname',
          `127.0.0.1:${port}`,
          'http://[2001:db8::1]:82/',
        ]);
        assert.equal(body6, 'hello');
        assert.deepEqual(seen[1]!.address, { type: 'ipv6', host: '2001:db8::1', port: 82 });
      } finally {
        server.close();
      }
    }
  },
);
