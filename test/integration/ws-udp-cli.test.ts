// UDP over WebSocket as a user runs it: `ladder server --udp --web-port 0` prints a v2ray-plugin
// URL; `ladder client --udp --key URL` carries SOCKS5 UDP ASSOCIATE over the web front's packet
// endpoint and says so in its banner. The control: the same server without --udp serves no packet
// endpoint, so the same datagrams get nothing back.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../../src/transport/udp-socks5.js';
import { run, unmanagedWeb, waitForStdout, type Run } from '../helpers/cli-run.js';

const WEB_URL = /ss:\/\/\S+plugin=v2ray-plugin\S*/;

function server(udp: boolean): Run {
  return run(unmanagedWeb('udp-over-ws-password', '--allow-private', ...(udp ? ['--udp'] : [])));
}

/** Datagrams echoed through `ladder client --udp` with the server's web URL (out of 20). */
async function throughClient(srv: Run, echoPort: number): Promise<number> {
  const [url] = await waitForStdout(srv, WEB_URL, 30_000);
  const c = run(['client', '--udp', '--key', url, '--socks', '127.0.0.1:0']);
  try {
    const m = await waitForStdout(c, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/, 30_000);
    assert.match(c.stdout(), /SOCKS5 UDP .*relayed by the server's web front \(UDP over WebSocket\)/);
    // Without a packet endpoint the client's WebSocket is refused and so is the association.
    const assoc = await socks5UdpAssociate(Number(m[1])).catch(() => undefined);
    if (!assoc) return 0;
    try {
      const r = await udpEchoRun(assoc, { type: 'ipv4', host: '127.0.0.1', port: echoPort }, 20, 200);
      assert.equal(r.corrupted, 0);
      return r.received;
    } finally {
      assoc.close();
    }
  } finally {
    c.child.kill('SIGKILL');
  }
}

describe('ladder client --udp over the web front (CLI)', () => {
  it('with --udp on the server: datagrams echoed over WebSocket; without it (the control): none', async (t) => {
    const echo = await startUdpEcho();
    t.after(() => echo.close());
    const on = server(true);
    try {
      assert.ok((await throughClient(on, echo.port)) >= 19, 'datagrams over the web front');
    } finally {
      on.child.kill('SIGKILL');
    }
    const off = server(false);
    try {
      assert.equal(await throughClient(off, echo.port), 0, 'no packet endpoint without --udp');
    } finally {
      off.child.kill('SIGKILL');
    }
  });
});
