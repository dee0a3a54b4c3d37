// The gRPC key in the managed server's banner: with a TLS web front (gRPC needs TLS and h2) the
// first key is printed a fourth time as a `type=grpc` URL after its HTTPUpgrade one, as the
// unmanaged banner and `keys url` print it (before: the managed banner had no gRPC line), and
// `ladder client --key` with that URL carries an echo over gRPC. Control: a plain front prints
// no gRPC URL (the same rule as the unmanaged banner).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { echoThroughCliClient, run, waitForStdout } from '../helpers/cli-run.js';
import { freePort, startEcho } from '../helpers/net.js';
import { managedServerArgv } from '../helpers/peers.js';
import { makeCert, opensslSkip, tempDir } from '../web/fixtures.js';

const GRPC_URL = /ss:\/\/\S+type=grpc\S*/;
const skip = opensslSkip();

describe("the managed server's banner prints the gRPC key (TLS front)", { skip }, () => {
  const dir = skip ? undefined : tempDir('ladder-grpc-managed-');
  after(() => dir?.remove());

  test('the banner prints a gRPC URL after the HTTPUpgrade one; ladder client carries an echo over it', async () => {
    const cert = makeCert(dir!.path, '127.0.0.1');
    const data = `${dir!.path}/tls`;
    const srv = run(
      await managedServerArgv(data, await freePort(), [
        '--web-port',
        '0',
        '--web-host',
        '127.0.0.1',
        '--tls-cert',
        cert.certPath,
        '--tls-key',
        cert.keyPath,
        '--allow-private',
      ]),
    );
    const echo = await startEcho();
    try {
      await waitForStdout(srv, /Ctrl-C to stop/, 45_000);
      const out = srv.stdout();
      const m =
        /over HTTPUpgrade \([^\n]*\n {2}ss:\/\/\S+v2ray-http-upgrade\S*\n {2}over gRPC \(ladder client; v2rayNG\/v2rayN: the subscription's v2ray-json format\):\n {2}(ss:\/\/\S+)\n/.exec(
          out,
        );
      assert.ok(m, out);
      const url = m[1]!;
      assert.match(url, /[?&]type=grpc/);
      assert.match(url, /[?&]security=tls/);
      assert.match(url, /#Initial%20key%20\(gRPC\)$/);
      const banner = await echoThroughCliClient(url, echo.port, 64 * 1024, {
        NODE_EXTRA_CA_CERTS: cert.certPath,
      });
      assert.match(banner, /over gRPC\+TLS/);
    } finally {
      srv.child.kill('SIGKILL');
      await echo.close();
    }
  });

  test('control: a plain front prints the WebSocket and HTTPUpgrade URLs and no gRPC one', async () => {
    const srv = run(
      await managedServerArgv(`${dir!.path}/plain`, await freePort(), [
        '--web-port',
        '0',
        '--web-host',
        '127.0.0.1',
      ]),
    );
    try {
      await waitForStdout(srv, /Ctrl-C to stop/, 45_000);
      assert.match(srv.stdout(), /v2ray-http-upgrade/);
      assert.doesNotMatch(srv.stdout(), GRPC_URL);
      assert.doesNotMatch(srv.stdout(), /over gRPC/);
    } finally {
      srv.child.kill('SIGKILL');
    }
  });
});
