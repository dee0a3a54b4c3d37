// End to end: `ladder client` (the CLI, a SIP002 key with plugin=shadow-tls;host;password;
// version=3) → Ladder's ShadowTLS v3 listener, relaying the handshake to Debian's nginx (TLS 1.3,
// lab CA certificate) as the "real site" → the Shadowsocks data plane → sink / source on
// loopback. 8 MiB each way, hashed, with aes-256-gcm and a 2022 method, and once with both CLIs
// (`ladder server --shadowtls-port`'s printed key in `ladder client`); SOCKS5 UDP inside the
// streams (UoT v2); then a key with a wrong
// ShadowTLS password: the client's log says so in one line while the listener relays that
// connection to the site.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { listenShadowTls, type ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { silentLogger } from '../../src/shared/logger.js';
import { run, waitForStdout, type Run } from '../helpers/cli-run.js';
import { startTestServer, type TestDataPlane } from '../helpers/data-plane.js';
import { startLadderClient, type Peer } from '../helpers/peers.js';
import { assertUdpEchoes100 } from '../helpers/udp-echo-check.js';
import { nginxTls13Site } from '../helpers/tls13-site.js';
import { socks5Connect } from '../helpers/socks5.js';
import { waitFor } from '../helpers/wait.js';
import { nginxSkip, opensslSkip, startNginx, type Nginx } from '../web/fixtures.js';
import { useFixtures } from './matrix.js';
import { MiB, transferBothWays, waitUntilUsable } from './ws-matrix.js';

const SNI = 'site.test';
const PASSWORD = `stls-${randomBytes(6).toString('hex')}`;
const KEYS = [
  { id: 'aes', method: 'aes-256-gcm', secret: `ss-${randomBytes(6).toString('hex')}` },
  { id: 'k2022', method: '2022-blake3-aes-256-gcm', secret: randomBytes(32).toString('base64') },
];

function shadowTlsKey(k: { method: string; secret: string }, port: number, password: string): string {
  return formatSsUrl({
    method: k.method,
    password: k.secret,
    host: '127.0.0.1',
    port,
    plugin: 'shadow-tls',
    pluginOptions: `host=${SNI};password=${password};version=3`,
  });
}

describe(
  'ladder client → ShadowTLS v3 (site: nginx TLS 1.3) → Ladder server',
  { skip: nginxSkip() || opensslSkip() },
  () => {
    const fx = useFixtures();
    const dir = mkdtempSync(join(tmpdir(), 'ladder-stls-e2e-'));
    const peers: Peer[] = [];
    let nginx: Nginx;
    let plane: TestDataPlane;
    let listener: ShadowTlsListener;

    before(async () => {
      writeFileSync(join(dir, 'index.html'), '<!doctype html><title>site</title>\n', { mode: 0o644 });
      nginx = await startNginx(nginxTls13Site(dir, await makeLabCertificates([SNI]), SNI));
      plane = await startTestServer({ keys: KEYS, udpOverTcp: true });
      listener = await listenShadowTls({
        port: 0,
        host: '127.0.0.1',
        handshake: { host: '127.0.0.1', port: nginx.port },
        passwords: [PASSWORD],
        idleMs: 10_000,
        logger: silentLogger,
        onStream: (stream, info) => plane.plane.server.handleStream(stream, info),
      });
    });
    after(async () => {
      for (const p of peers) await p.stop();
      await listener?.close();
      await plane?.close();
      await nginx?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    for (const k of KEYS) {
      test(`${k.method}: 8 MiB each way, hashed`, async () => {
        const client = await startLadderClient({ key: shadowTlsKey(k, listener.address.port, PASSWORD) });
        peers.push(client);
        const before = listener.counts.switched;
        await waitUntilUsable(client.socksPort, fx, peers);
        await transferBothWays(client.socksPort, 8 * MiB, fx, peers);
        assert.ok(
          listener.counts.switched >= before + 3,
          `connections switched: ${listener.counts.switched - before}`,
        );
        assert.match(client.output(), /over ShadowTLS v3/, 'the banner names the transport');
      });
    }

    test('both CLIs: ladder server --shadowtls-port prints the key, ladder client takes it as is: 8 MiB each way (2022-blake3-aes-128-gcm)', async () => {
      const server: Run = run([
        ...'server --port 0 --host 127.0.0.1 --allow-private --show-urls --method 2022-blake3-aes-128-gcm'.split(
          ' ',
        ),
        ...['--password', randomBytes(16).toString('base64')],
        ...['--shadowtls-port', '0', '--shadowtls-host', '127.0.0.1'],
        ...['--shadowtls-handshake', `127.0.0.1:${nginx.port}`, '--shadowtls-sni', SNI],
      ]);
      try {
        await waitForStdout(server, /ShadowTLS v3 on 127\.0\.0\.1:\d+/);
        const url = (await waitForStdout(server, /(ss:\/\/\S+plugin=shadow-tls\S+)/))[1]!;
        const client = await startLadderClient({ key: url });
        peers.push(client);
        await waitUntilUsable(client.socksPort, fx, peers);
        await transferBothWays(client.socksPort, 8 * MiB, fx, peers);
      } finally {
        server.child.kill('SIGTERM');
        await server.exit;
      }
    });

    test('SOCKS5 UDP ASSOCIATE inside the ShadowTLS streams (UDP-over-TCP v2, the key default): 100 datagrams echoed', async () => {
      const client = await startLadderClient({
        key: shadowTlsKey(KEYS[1]!, listener.address.port, PASSWORD),
        extraArgs: ['--udp'],
      });
      peers.push(client);
      await waitUntilUsable(client.socksPort, fx, peers);
      const before = listener.counts.switched;
      await assertUdpEchoes100(client.socksPort);
      assert.ok(listener.counts.switched > before, 'the datagrams went through a ShadowTLS connection');
    });

    test('a wrong ShadowTLS password: one clear line on the client, the listener relays to the site', async () => {
      const client = await startLadderClient({
        key: shadowTlsKey(KEYS[0]!, listener.address.port, 'not-the-password'),
      });
      peers.push(client);
      const relayed = listener.counts.relayed;
      const s = await socks5Connect({
        proxyPort: client.socksPort,
        host: '127.0.0.1',
        port: fx.echo.port,
        timeoutMs: 10_000,
      }).catch(() => undefined);
      s?.write('ping');
      await waitFor(() => /ERR_SHADOWTLS_AUTH/.test(client.output()), {
        timeoutMs: 15_000,
        message: 'the client says why',
      });
      s?.destroy();
      const lines = client
        .output()
        .split('\n')
        .filter((l) => l.includes('ERR_SHADOWTLS_AUTH'));
      assert.ok(
        lines.some((l) => /shadow-tls password= is wrong/.test(l)),
        lines.join('\n'),
      );
      assert.ok(!client.output().includes('not-the-password'), 'the password is not logged');
      assert.ok(listener.counts.relayed > relayed, 'the listener relayed the connection to the site');
    });
  },
);
