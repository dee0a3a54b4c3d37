// `ladder probe --servers` with a gRPC key (type=grpc): dns/tcp to the front, then the tunnel
// over a gRPC call (the dialer's own TLS or h2c; its failures show in the tunnel step). In
// process, a plain front taking h2c from loopback: the right service name is reachable, a wrong
// one is blocked at the tunnel step (negative control: the call really is made and refused).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { createTunnelDialer, endpointFromKey } from '../../src/client/index.js';
import { checkServer, explain, maskedName, type ServerTarget } from '../../src/probe/servers.js';
import { serversTable } from '../../src/probe/servers-report.js';
import { grpcServiceName } from '../../src/server/web/grpc.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const secret = 'grpc-probe-secret';
let srv: WsTestServer;
let web: http.Server;
let target: URL;

before(async () => {
  web = http.createServer((_req, res) => res.writeHead(204).end());
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  target = new URL(`http://127.0.0.1:${(web.address() as AddressInfo).port}/generate_204`);
  srv = await startWsTestServer({
    keys: [{ id: 'k', method: 'aes-256-gcm', secret }],
    front: { grpc: true },
  });
});
after(async () => {
  await srv?.close();
  web?.close();
});

function grpcTarget(serviceName: string): ServerTarget {
  const key = `ss://${Buffer.from(`aes-256-gcm:${secret}`).toString('base64url')}@127.0.0.1:${srv.webPort}/?type=grpc&serviceName=${serviceName}&security=none`;
  const ep = endpointFromKey(key, 'local');
  return {
    name: maskedName(ep),
    host: ep.host,
    port: ep.port,
    grpc: ep.grpc,
    dialer: (nextHop) => createTunnelDialer({ ...ep, nextHop }),
  };
}

test('the right service name: reachable through tcp and the tunnel; the name hides the service', async () => {
  const t = grpcTarget(grpcServiceName(srv.secretPath));
  assert.equal(t.name, `grpc://127.0.0.1:${srv.webPort}/… aes-256-gcm`);
  const c = await checkServer(t, { target, timeoutMs: 3000 });
  assert.equal(c.transport, 'grpc');
  assert.deepEqual(
    c.steps.map((s) => [s.step, s.failure]),
    [
      ['tcp', null],
      ['tunnel', null],
    ],
  );
});

test('a wrong service name: blocked at the tunnel step, no call taken', async () => {
  const calls = srv.grpcCalls;
  const c = await checkServer(grpcTarget('wrong'), { target, timeoutMs: 3000 });
  assert.equal(c.blocking, 'tunnel');
  assert.equal(srv.grpcCalls, calls);
  // The front's 404 in the table's cell, and what it means (the key's path, not the key).
  assert.equal(c.steps.at(-1)!.failure, 'upgrade_refused: HTTP 404');
  assert.match(
    explain(c),
    /^the server answered HTTP 404 to the tunnel's upgrade request at the key's path .*does not match the server's secret path/,
  );
  assert.match(serversTable([c]), /tunnel +result\n1 +grpc:\S+ \S+ +ok +HTTP 404 +blocked at tunnel/);
});
