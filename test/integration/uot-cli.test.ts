import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { test } from 'node:test';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../../src/transport/udp-socks5.js';
import { run, waitForStdout } from '../helpers/cli-run.js';
import { startLadderClient, startLadderServer } from '../helpers/peers.js';

/**
 * A TCP-only path to `port` (as a middlebox or CDN that carries no UDP): a plain TCP forwarder.
 * It also holds the same UDP port, dropping what comes: otherwise another test's UDP echo that
 * happened to be bound there would bounce the client's raw datagrams back, which the client opens
 * as replies (SIP004 UDP is the same both ways), and the negative control would see echoes.
 */
async function tcpOnlyPath(port: number): Promise<{ port: number; close(): Promise<void> }> {
  for (let tries = 0; ; tries++) {
    const p = await tcpForwarder(port);
    const udp = dgram.createSocket('udp4');
    const bound = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false));
      udp.bind(p.port, '127.0.0.1', () => r(true));
    });
    if (bound) {
      udp.on('message', () => {}); // dropped
      return { port: p.port, close: async () => (udp.close(), p.close()) };
    }
    try {
      udp.close();
    } catch {
      // never bound
    }
    await p.close();
    if (tries >= 20) throw new Error('no port free for both TCP and UDP');
  }
}

async function tcpForwarder(port: number): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((down) => {
    const up = net.connect({ port, host: '127.0.0.1' });
    for (const s of [down, up]) {
      socks.add(s);
      s.on('error', () => (s === up ? down : up).destroy());
      s.on('close', () => socks.delete(s));
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise((r) => srv.close(r));
    },
  };
}

// UDP-over-TCP through the CLI: `ladder server --udp` reached over a TCP-only path, and
// `ladder client --udp` with a key saying uot=2, or with --udp-over-tcp: the datagrams ride inside
// the tunnel stream and are echoed. Negative controls: the same client without either sends raw
// UDP to the path's port, where nothing carries it; and a server without --udp does not serve UoT
// (it relays UDP, and the operator turned UDP off).
test('CLI --udp as UDP-over-TCP over a TCP-only path (uot=2 in the key, --udp-over-tcp)', async (t) => {
  const method = 'aes-256-gcm';
  const password = `uot-${randomBytes(6).toString('hex')}`;
  const echo = await startUdpEcho();
  t.after(() => echo.close());
  const server = await startLadderServer({
    extraArgs: ['--method', method, '--password', password, '--udp'],
  });
  t.after(() => server.stop());
  const path = await tcpOnlyPath(server.port);
  t.after(() => path.close());
  const tcpOnly = path.port;
  const key = (port: number, uot?: 2): string =>
    formatSsUrl({ method, password, host: '127.0.0.1', port, ...(uot ? { uot } : {}) });
  const target = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.port };

  const run = async (k: string, extra: string[]): Promise<number> => {
    const client = await startLadderClient({ key: k, extraArgs: ['--udp', ...extra] });
    try {
      const assoc = await socks5UdpAssociate(client.socksPort);
      try {
        const r = await udpEchoRun(assoc, target, 50, 100, {
          window: 4,
          lossTimeoutMs: 1500,
          deadlineMs: 20_000,
        });
        assert.equal(r.corrupted, 0);
        return r.received;
      } finally {
        assoc.close();
      }
    } finally {
      await client.stop();
    }
  };
  assert.equal(await run(key(tcpOnly, 2), []), 50, 'key with uot=2');
  assert.equal(await run(key(tcpOnly), ['--udp-over-tcp']), 50, '--udp-over-tcp');
  assert.equal(await run(key(tcpOnly), []), 0, 'negative control: raw UDP over a TCP-only path');

  const noUdp = await startLadderServer({ extraArgs: ['--method', method, '--password', password] });
  t.after(() => noUdp.stop());
  assert.equal(await run(key(noUdp.port, 2), []), 0, 'negative control: a server without --udp');
});

// --udp-over-tcp only changes how --udp's datagrams travel; alone it would do nothing, silently.
test('CLI: --udp-over-tcp without --udp is refused with one line', async () => {
  const key = formatSsUrl({ method: 'aes-256-gcm', password: 'uot-alone', host: '127.0.0.1', port: 9 });
  const r = run(['client', '--key', key, '--socks', '127.0.0.1:0', '--udp-over-tcp']);
  const late = setTimeout(() => r.child.kill('SIGTERM'), 15_000); // still running: the refusal is missing
  const code = await r.exit;
  clearTimeout(late);
  assert.equal(code, 2, r.stderr());
  assert.match(r.stderr(), /^ladder: --udp-over-tcp carries the datagrams of --udp: add --udp/);
  assert.equal(r.stderr().trim().split('\n').length, 1);
  // Control: with --udp the same flags start the client.
  const ok = run(['client', '--key', key, '--socks', '127.0.0.1:0', '--udp', '--udp-over-tcp']);
  await waitForStdout(ok, /SOCKS5 proxy on/);
  ok.child.kill('SIGTERM');
  assert.equal(await ok.exit, 0);
});
