/**
 * Blocked-address detection in the store (migration 0005_address_reports): reports per (node,
 * address, key); `keys` distinct keys within the window mark the address suspected, fewer do not
 * (negative control), one key reporting many times counts once; keys list the node's other
 * addresses; a node with every address suspected is `suspected`; add-address and unblock clear it.
 * On a real SQLite file and a real PostgreSQL.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  keyAddresses,
  listedNodes,
  openStore,
  parseStoreLocation,
  type KyselyStore,
  type NodeInfo,
} from '../../src/store/index.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { sleep } from '../helpers/wait.js';

let pg: PgCluster | undefined;
before(async () => {
  if (HAVE_POSTGRES) pg = await startPostgres();
});
after(() => pg?.destroy());

const info = (name: string, addresses: string[]): NodeInfo => ({
  name,
  addresses,
  port: 8388,
  transports: [{ type: 'shadowsocks', port: 8388, udp: true }],
  version: '0.1.0',
});

async function checks(store: KyselyStore): Promise<void> {
  const reg = store.nodes();
  await reg.register(info('fra-1', ['203.0.113.1', '203.0.113.2']), 'one');
  await reg.register(info('ams-1', ['198.51.100.1']), 'two');
  const policy = { keys: 3, windowMs: 60_000 };

  assert.equal(await reg.report('192.0.2.99', 'k1', policy), undefined, 'not a node address');
  // Negative control: two distinct keys (one of them reporting three times) do not mark it.
  for (const k of ['k1', 'k1', 'k1', 'k2']) {
    const out = await reg.report('203.0.113.1', k, policy);
    assert.deepEqual(out, { node: 'fra-1', keys: k === 'k1' ? 1 : 2, suspected: false, marked: false });
  }
  assert.deepEqual((await reg.get('fra-1'))!.suspectedAddresses, []);
  assert.deepEqual((await reg.report('203.0.113.1', 'k3', policy))!.marked, true);
  assert.deepEqual((await reg.report('203.0.113.1', 'k4', policy))!, {
    node: 'fra-1',
    keys: 4,
    suspected: true,
    marked: false,
  });
  let fra = (await reg.get('fra-1'))!;
  assert.deepEqual(fra.suspectedAddresses, ['203.0.113.1']);
  assert.equal(fra.state, 'active', 'another address stays: the node stays active');
  assert.deepEqual(keyAddresses(fra), ['203.0.113.2']);
  assert.deepEqual(
    listedNodes(await reg.list()).map((n) => n.name),
    ['ams-1', 'fra-1'],
  );

  // Every address suspected: the node is `suspected` and leaves the keys.
  for (const k of ['k1', 'k2', 'k3']) await reg.report('203.0.113.2', k, policy);
  fra = (await reg.get('fra-1'))!;
  assert.equal(fra.state, 'suspected');
  assert.deepEqual(
    listedNodes(await reg.list()).map((n) => n.name),
    ['ams-1'],
  );
  // A fresh address: listed, the node back in the keys, the old ones still suspected.
  fra = await reg.addAddress('fra-1', '203.0.113.50');
  assert.equal(fra.state, 'active');
  assert.deepEqual(keyAddresses(fra), ['203.0.113.50']);
  // unblock clears every suspicion and forgets the reports: one more report does not re-mark.
  fra = await reg.setState('fra-1', 'active');
  assert.deepEqual(fra.suspectedAddresses, []);
  assert.equal((await reg.report('203.0.113.1', 'k9', policy))!.keys, 1);

  // The window: reports older than it do not count.
  const short = { keys: 2, windowMs: 300 };
  await reg.report('198.51.100.1', 'a', short);
  await sleep(500);
  assert.deepEqual((await reg.report('198.51.100.1', 'b', short))!.marked, false);
  assert.deepEqual((await reg.report('198.51.100.1', 'c', short))!.marked, true);
}

test('address reports on SQLite', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-reports-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await openStore(parseStoreLocation(undefined, dir));
  try {
    await checks(store);
  } finally {
    await store.close();
  }
});

test('address reports on PostgreSQL', { skip: SKIP_WITHOUT_POSTGRES }, async () => {
  const store = await openStore(parseStoreLocation(pg!.url, '.'));
  try {
    await checks(store);
  } finally {
    await store.close();
  }
});
