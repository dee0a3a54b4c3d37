// UDP over WebSocket as a user runs it: `ladder server --udp --web-port 0` prints a v2ray-plugin
// URL; `ladder client --udp --key URL` carries SOCKS5 UDP ASSOCIATE over the web front's packet
// endpoint and says so in its banner. The control: the same server without --udp serves no packet
// endpoint, so the same datagrams get nothing back, and the client's log says why.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../../src/transport/udp-socks5.js';
import { run, unmanagedWeb, waitForStdout, type Run } from '../helpers/cli-run.js';

const WEB_URL = /ss:\/\/\S+plugin=v2ray-plugin\S*/;

function server(udp: boolean): Run {
  return run(unmanagedWeb('udp-over-ws-password', '--allow-private', ...(udp ? ['--udp'] : [])));
}

/** Datagrams echoed through `ladder client --udp` with the server's web URL (out of 20), and the client's log. */
async function throughClient(srv: Run, echoPort: number): Promise<{ received: number; log: string }> {
  const [url] = await waitForStdout(srv, WEB_URL, 30_000);
  const c = run(['client', '--udp', '--key', url, '--socks', '127.0.0.1:0']);
  try {
    const m = await waitForStdout(c, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/, 30_000);
    assert.match(c.stdout(), /SOCKS5 UDP .*relayed by the server's web front \(UDP over WebSocket\)/);
    // Without a packet endpoint the client's WebSocket is refused and so is the association.
    const assoc = await socks5UdpAssociate(Number(m[1])).catch(() => undefined);
    if (!assoc) {
      await waitForLog(c, /does not relay UDP/);
      return { received: 0, log: c.stdout() + c.stderr() };
    }
    try {
      const r = await udpEchoRun(assoc, { type: 'ipv4', host: '127.0.0.1', port: echoPort }, 20, 200);
      assert.equal(r.corrupted, 0);
      return { received: r.received, log: c.stdout() + c.stderr() };
    } finally {
      assoc.close();
    }
  } finally {
    c.child.kill('SIGKILL');
  }
}

/** Wait (up to 10 s) until the client's output matches `re`; the assertion after says what was missing. */
async function waitForLog(c: Run, re: RegExp): Promise<void> {
  for (let i = 0; i < 100 && !re.test(c.stdout() + c.stderr()); i++)
    await new Promise((r) => setTimeout(r, 100));
}

describe('ladder client --udp over the web front (CLI)', () => {
  it('with --udp on the server: datagrams echoed over WebSocket; without it (the control): none', async (t) => {
    const echo = await startUdpEcho();
    t.after(() => echo.close());
    const on = server(true);
    try {
      const r = await throughClient(on, echo.port);
      assert.ok(r.received >= 19, 'datagrams over the web front');
      assert.doesNotMatch(r.log, /UDP ASSOCIATE refused/);
    } finally {
      on.child.kill('SIGKILL');
    }
    const off = server(false);
    try {
      const r = await throughClient(off, echo.port);
      assert.equal(r.received, 0, 'no packet endpoint without --udp');
      // At the default log level, one line says why and what to change.
      assert.match(
        r.log,
        /the server's web front does not relay UDP .*the server needs --udp, or managed mode/,
      );
    } finally {
      off.child.kill('SIGKILL');
    }
  });
});
