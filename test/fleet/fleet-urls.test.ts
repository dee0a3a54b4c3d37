import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fetchDynamicKey, parseDynamicKeyUrl } from '../../src/client/dynamic-fetch.js';
import { SKIP_WITHOUT_POSTGRES } from '../helpers/postgres.js';
import { fleetFixture, startOwnNode, type FleetFixture, type FleetNodeProc } from './fleet-helpers.js';

/**
 * Finding 1: every URL a fleet node hands out names ONE endpoint, its own API: host, port and
 * certificate pin. Before, the port was a shared setting every node overwrote at start (node-1's
 * host with the last node's port: ECONNREFUSED). Two nodes, a key made through node 1, a third
 * node started; the key's dynamic URL from either node fetches the key with the pin check. The
 * control: node 1's URL carrying node 2's pin is refused (the pin is checked).
 */
test(
  "fleet: a key's dynamic and subscription URLs from each node name that node's API (host, port, pin) and fetch after a third node starts",
  { skip: SKIP_WITHOUT_POSTGRES, timeout: 240_000 },
  async (t) => {
    const fx: FleetFixture = await fleetFixture('ladder-fleet-urls-');
    t.after(() => fx.close());
    const start = (name: string, host: string): Promise<FleetNodeProc> => startOwnNode(fx, name, host);
    const n1 = await start('n1', '127.0.0.2');
    const n2 = await start('n2', '127.0.0.3');
    const made = await n1.call('POST', '/access-keys', { name: 'u' });
    assert.equal(made.status, 201, made.body);
    const key = JSON.parse(made.body) as { id: string; password: string };
    await start('n3', '127.0.0.4'); // before the fix it moved every node's URLs to its port

    const urls = async (n: FleetNodeProc): Promise<{ dyn: string; sub: string }> => {
      const r = await n.call('GET', `/access-keys/${key.id}`);
      assert.equal(r.status, 200, r.body);
      const j = JSON.parse(r.body) as { dynamicAccessUrl: string; subscriptionUrl: string };
      return { dyn: j.dynamicAccessUrl, sub: j.subscriptionUrl };
    };
    for (const n of [n1, n2]) {
      const { dyn, sub } = await urls(n);
      const own = `${n.host}:${n.apiPort}`;
      assert.ok(dyn.startsWith(`ssconf://${own}/access/`), `${n.name}: ${dyn}`);
      assert.match(dyn, new RegExp(`\\?certSha256=${n.certSha256}$`, 'i'), `${n.name}'s own pin`);
      assert.ok(sub.startsWith(`https://${own}/sub/`), `${n.name}: ${sub}`);
      const body = JSON.parse(await fetchDynamicKey(parseDynamicKeyUrl(dyn), { timeoutMs: 10_000 })) as {
        password?: string;
        servers?: { password: string }[];
      };
      assert.equal(
        body.password ?? body.servers?.[0]?.password,
        key.password,
        `${n.name}'s URL serves the key`,
      );
    }

    // The control: node 1's address with node 2's pin fails the pin check.
    const mixed = (await urls(n1)).dyn.replace(/certSha256=[0-9A-Fa-f]+/, `certSha256=${n2.certSha256}`);
    await assert.rejects(fetchDynamicKey(parseDynamicKeyUrl(mixed), { timeoutMs: 10_000 }), /certSha256 pin/);

    // The CLI on a node's data directory prints that node's endpoint too.
    const { accessConfigText } = await import('../../src/cli/commands/server-access-config.js');
    const text = await accessConfigText({ dataDir: join(fx.dir, 'n2'), store: fx.pg.url });
    assert.ok(text.includes(`"apiUrl":"https://${n2.host}:${n2.apiPort}/`), text.split('\n')[1]);
    assert.ok(text.includes(`dynamic: ssconf://${n2.host}:${n2.apiPort}/access/`), 'n2 dynamic URL');
  },
);
