// gRPC as a user runs it: `ladder server --web-port 0 --tls-cert … --tls-key …` prints each key a
// third time as a gRPC URL (`type=grpc&serviceName=…&security=tls&sni=…`), and `ladder client
// --key URL` (trusting the front's self-signed certificate through NODE_EXTRA_CA_CERTS) carries a
// full-duplex 1 MiB echo over it and says "over gRPC+TLS" in its banner. The control: a plain
// front prints no gRPC URL (gRPC keys need TLS; behind nginx, with --web-public-url https://…).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { echoThroughCliClient, run, unmanagedWeb, waitForStdout } from '../helpers/cli-run.js';
import { startEcho } from '../helpers/net.js';
import { makeCert, opensslSkip, tempDir } from '../web/fixtures.js';

const GRPC_URL = /ss:\/\/\S+type=grpc\S*/;
const skip = opensslSkip();

describe('ladder server prints a gRPC key; ladder client uses it (CLI, TLS front)', { skip }, () => {
  const dir = skip ? undefined : tempDir('ladder-grpc-cli-');
  after(() => dir?.remove());

  test('1 MiB echoed through the printed gRPC URL', async () => {
    const cert = makeCert(dir!.path, '127.0.0.1');
    const srv = run(
      unmanagedWeb(
        'grpc-cli-password',
        '--allow-private',
        '--tls-cert',
        cert.certPath,
        '--tls-key',
        cert.keyPath,
      ),
    );
    const echo = await startEcho();
    try {
      const [url] = await waitForStdout(srv, GRPC_URL, 30_000);
      assert.match(url, /[?&]security=tls/);
      const banner = await echoThroughCliClient(url, echo.port, 1024 * 1024, {
        NODE_EXTRA_CA_CERTS: cert.certPath,
      });
      assert.match(banner, /over gRPC\+TLS/);
    } finally {
      srv.child.kill('SIGKILL');
      await echo.close();
    }
  });

  test('control: a plain front prints the WebSocket URL and no gRPC one', async () => {
    const srv = run(unmanagedWeb('grpc-cli-plain', '--allow-private'));
    try {
      await waitForStdout(srv, /ss:\/\/\S+plugin=v2ray-plugin\S*/, 30_000);
      await new Promise((r) => setTimeout(r, 300));
      assert.doesNotMatch(srv.stdout(), GRPC_URL);
    } finally {
      srv.child.kill('SIGKILL');
    }
  });
});
