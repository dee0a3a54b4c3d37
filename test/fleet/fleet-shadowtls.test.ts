/**
 * A fleet whose nodes run ShadowTLS v3 ports (PostgreSQL store, two `ladder server --node`
 * processes on 127.0.0.2 and 127.0.0.3, a lab TLS 1.3 handshake site): each node stores its
 * ShadowTLS endpoint (port, SNI, per-key passwords) with its row (GET /nodes shows it, no
 * password); a key's subscription from either node lists every node's ShadowTLS port with the
 * key's own password, and that password switches on the other node's port.
 */
import assert from 'node:assert/strict';
import type https from 'node:https';
import { request } from 'node:https';
import { test } from 'node:test';
import { makeLabCertificates } from '../../src/lab/lab-ca.js';
import { keyShadowTlsPassword } from '../../src/protocol/sip002/shadowtls.js';
import { SKIP_WITHOUT_POSTGRES } from '../helpers/postgres.js';
import { captureClientHello, connectShadowTls, startLabSite } from '../helpers/shadowtls-client.js';
import { fleetFixture, startOwnNode, type FleetNodeProc } from './fleet-helpers.js';

/** GET `url` (a node's own API certificate: not checked on loopback), the body. */
function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = request(url, { rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      const got: Buffer[] = [];
      res.on('data', (c: Buffer) => got.push(c));
      res.on('end', () => resolve(Buffer.concat(got).toString()));
    });
    r.on('error', reject);
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.end();
  });
}

interface Sip008Server {
  server: string;
  server_port: number;
  password: string;
  method: string;
  plugin?: string;
  plugin_opts?: string;
}

test(
  'fleet: every node’s ShadowTLS port is stored with it and listed in subscriptions with the key’s own password',
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 240_000 },
  async (t) => {
    const fx = await fleetFixture('ladder-fleet-stls-');
    t.after(() => fx.close());
    const certs = await makeLabCertificates(['fleet-site.lab']);
    const site: https.Server = await startLabSite(certs, 'TLSv1.3', '<p>fleet site</p>');
    fx.cleanups.push(async () => {
      site.closeAllConnections();
      site.close();
    });
    const sitePort = (site.address() as { port: number }).port;
    const hello = await captureClientHello('fleet-site.lab');
    const stlsPorts = new Map<string, number>();
    const start = async (name: string, host: string): Promise<FleetNodeProc> => {
      const n = await startOwnNode(fx, name, host, [
        '--no-metrics',
        // All interfaces (the test dials 127.0.0.1): each node's port is its own.
        ...['--shadowtls-port', '0'],
        ...['--shadowtls-handshake', `127.0.0.1:${sitePort}`, '--shadowtls-sni', 'fleet-site.lab'],
      ]);
      const m = /ShadowTLS v3 on port (\d+)/.exec(n.run.stdout());
      assert.ok(m, n.run.stdout());
      stlsPorts.set(host, Number(m[1]));
      return n;
    };
    const n1 = await start('n1', '127.0.0.2');
    const n2 = await start('n2', '127.0.0.3');

    // Stored with the node: GET /nodes shows each node's ShadowTLS transport, without a password.
    const nodes = await n2.call('GET', '/nodes');
    assert.equal(nodes.status, 200, nodes.body);
    const listed = (JSON.parse(nodes.body) as { nodes: { name: string; transports: object[] }[] }).nodes;
    for (const [name, host] of [
      ['n1', '127.0.0.2'],
      ['n2', '127.0.0.3'],
    ] as const) {
      const tr = listed.find((n) => n.name === name)!.transports;
      assert.deepEqual(
        tr.find((x) => (x as { type: string }).type === 'shadowtls'),
        {
          type: 'shadowtls',
          port: stlsPorts.get(host),
          sni: 'fleet-site.lab',
          udp: true,
          passwords: 'per-key',
        },
      );
    }

    const made = await n1.call('POST', '/access-keys', { name: 'u' });
    assert.equal(made.status, 201, made.body);
    const key = JSON.parse(made.body) as {
      id: string;
      method: string;
      password: string;
      subscriptionUrl: string;
    };
    const stlsPw = keyShadowTlsPassword({ method: key.method, secret: key.password });
    for (const n of [n1, n2]) {
      const one = await n.call('GET', `/access-keys/${key.id}`);
      const sub = (JSON.parse(one.body) as { subscriptionUrl: string }).subscriptionUrl;
      const sip008 = JSON.parse(await get(`${sub}/sip008`)) as { servers: Sip008Server[] };
      const viaStls = sip008.servers.filter((s) => s.plugin === 'shadow-tls');
      assert.deepEqual(
        viaStls.map((s) => `${s.server}:${s.server_port}`).sort(),
        [`127.0.0.2:${stlsPorts.get('127.0.0.2')}`, `127.0.0.3:${stlsPorts.get('127.0.0.3')}`],
        `${n.name}'s subscription lists both nodes' ShadowTLS ports`,
      );
      for (const s of viaStls) {
        assert.equal(s.plugin_opts, `host=fleet-site.lab;password=${stlsPw};version=3`);
        assert.equal(s.password, key.password);
      }
      assert.equal(new Set(sip008.servers.map((s) => JSON.stringify(s))).size, sip008.servers.length);
    }
    // The key's password switches on each node's port (the key reached the node through the store).
    for (const host of ['127.0.0.2', '127.0.0.3']) {
      let ok = false;
      for (let i = 0; i < 40 && !ok; i++) {
        ok = await connectShadowTls(stlsPorts.get(host)!, stlsPw, hello).then(
          (c) => (c.socket.destroy(), true),
          () => new Promise<boolean>((r) => setTimeout(() => r(false), 250)),
        );
      }
      assert.ok(ok, `the key's ShadowTLS password switches on ${host}`);
    }
  },
);
