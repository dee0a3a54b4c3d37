/**
 * Migration 0003_nodes and the NodeRegistry on a real SQLite file and a real PostgreSQL, and the
 * keys trigger: a NOTIFY on `ladder_keys` for each committed key change, none for a rolled-back
 * change or a usage flush (negative controls), and the sequence as the keys version.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Pg from 'pg';
import {
  DOWN_AFTER_MS,
  listedNodes,
  NodeError,
  openStore,
  parseStoreLocation,
  type KyselyStore,
  type NodeInfo,
  type NodeRecord,
} from '../../src/store/index.js';
import { KeyListener } from '../../src/fleet/key-listener.js';
import { silentLogger } from '../../src/shared/logger.js';
import { HAVE_POSTGRES, SKIP_WITHOUT_POSTGRES, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { runLadder } from '../helpers/ladder-run.js';
import { sleep, waitFor } from '../helpers/wait.js';

let pg: PgCluster | undefined;
before(async () => {
  if (HAVE_POSTGRES) pg = await startPostgres();
});
after(() => pg?.destroy());

const info = (name: string, host: string): NodeInfo => ({
  name,
  addresses: [host],
  port: 8388,
  transports: [
    { type: 'shadowsocks', port: 8388, udp: true },
    { type: 'websocket', port: 443, path: '/s3cret', tls: true, udp: true },
  ],
  version: '0.1.0',
  apiPort: 9000,
});

async function registryChecks(store: KyselyStore): Promise<void> {
  const reg = store.nodes();
  assert.deepEqual(await reg.list(), []);
  const a = await reg.register(info('fra-1', '203.0.113.1'), 'one');
  assert.equal(a.state, 'active');
  assert.equal(a.down, false);
  assert.deepEqual(a.transports[1], { type: 'websocket', port: 443, path: '/s3cret', tls: true, udp: true });
  // The same name from another process while the first beats: refused, with the age.
  await assert.rejects(reg.register(info('fra-1', '203.0.113.9'), 'two'), (e: unknown) => {
    assert.ok(e instanceof NodeError && e.code === 'NODE_RUNNING');
    assert.match(e.message, /^node "fra-1" is already running \(heartbeat \d+\.\d s ago\)/);
    return true;
  });
  // Control: the same process registering again is fine (a restart within one process).
  await reg.register(info('fra-1', '203.0.113.1'), 'one');
  assert.equal(await reg.heartbeat('fra-1', 'one', 7), true);
  assert.equal(
    await reg.heartbeat('fra-1', 'two', 7),
    false,
    'a heartbeat of a process that does not own the name',
  );
  assert.equal((await reg.get('fra-1'))!.keysVersion, 7);

  await reg.register(info('ams-1', '198.51.100.2'), 'x');
  await reg.setState('ams-1', 'draining');
  assert.deepEqual(
    listedNodes(await reg.list()).map((n) => n.name),
    ['fra-1'],
    'draining leaves the list',
  );
  await reg.setState('fra-1', 'blocked', 'null-routed');
  const all = await reg.list();
  assert.equal(all.find((n) => n.name === 'fra-1')!.stateReason, 'null-routed');
  // Nothing active and up: fail open to the draining one, never to a blocked one.
  assert.deepEqual(
    listedNodes(all).map((n) => n.name),
    ['ams-1'],
  );
  const added = await reg.addAddress('fra-1', '192.0.2.50');
  assert.deepEqual(added.addresses, ['192.0.2.50', '203.0.113.1'], 'a fresh address goes first');
  // A restart keeps the operator's state and the added address.
  await assert.rejects(reg.remove('fra-1'), /is running/);
  const stale: NodeRecord = { ...(await reg.get('fra-1'))!, down: true };
  assert.equal(listedNodes([stale]).length, 0, 'blocked and down is not listed');
  await reg.remove('fra-1', true);
  assert.equal(await reg.get('fra-1'), undefined);
  await assert.rejects(
    reg.setState('nosuch', 'active'),
    (e: unknown) => e instanceof NodeError && e.code === 'NODE_NOT_FOUND',
  );
  await reg.setState('ams-1', 'active');
  const again = await reg.register(info('ams-1', '198.51.100.3'), 'x');
  assert.deepEqual(again.addresses, ['198.51.100.3', '198.51.100.2']);
}

test('nodes on SQLite: register, duplicate name refused, heartbeat, states, addresses', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-nodes-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await openStore(parseStoreLocation(undefined, dir));
  try {
    await registryChecks(store);
    assert.equal(await store.nodes().keysVersion(), 0, 'SQLite has no keys version');
  } finally {
    await store.close();
  }
});

test(
  'nodes on PostgreSQL: the same, and a node is down after DOWN_AFTER_MS without a heartbeat',
  { skip: SKIP_WITHOUT_POSTGRES },
  async () => {
    const store = await openStore(parseStoreLocation(pg!.url, '.'));
    try {
      await registryChecks(store);
      const reg = store.nodes();
      await reg.register(info('lon-1', '192.0.2.9'), 'z');
      await sleep(DOWN_AFTER_MS + 300);
      const n = (await reg.get('lon-1'))!;
      assert.equal(n.down, true);
      assert.ok(n.heartbeatAgeMs > DOWN_AFTER_MS);
      // A down node's name can be taken by a new process.
      await reg.register(info('lon-1', '192.0.2.9'), 'new');
      assert.equal((await reg.get('lon-1'))!.down, false);
    } finally {
      await store.close();
    }
  },
);

test(
  'keys trigger: NOTIFY ladder_keys per committed key change; none on rollback or usage flush',
  { skip: SKIP_WITHOUT_POSTGRES },
  async () => {
    const store = await openStore(parseStoreLocation(pg!.url, '.'), { flushIntervalMs: 60_000 });
    const heard: number[] = [];
    let connected = 0;
    const listener = new KeyListener({
      url: pg!.url,
      log: silentLogger,
      onChange: (v) => heard.push(v),
      onConnect: () => void connected++,
    });
    try {
      await listener.start();
      assert.equal(connected, 1);
      const v0 = await store.nodes().keysVersion();
      const k = await store.createKey({ method: 'aes-256-gcm', secret: 'pw', port: 1234 });
      await waitFor(() => heard.length === 1, { timeoutMs: 3000, message: 'a NOTIFY for a created key' });
      assert.ok(heard[0]! > v0);
      await store.updateKey(k.id, { enabled: false });
      await waitFor(() => heard.length === 2, { timeoutMs: 3000, message: 'a NOTIFY for a disable' });
      assert.equal(await store.nodes().keysVersion(), heard[1]);
      // Negative controls: usage (last_seen_at) and a rolled-back change say nothing.
      store.addBytes(k.id, 100, 100);
      await store.flush();
      const { Client } = createRequire(import.meta.url)('pg') as typeof Pg;
      const c = new Client({ connectionString: pg!.url });
      await c.connect();
      await c.query('begin');
      await c.query(`update keys set enabled = 1 where id = $1`, [k.id]);
      await c.query('rollback');
      await sleep(500);
      assert.equal(heard.length, 2, `no NOTIFY for usage or a rollback: ${heard.join(',')}`);
      // One statement creating many keys: one NOTIFY (statement trigger).
      await store.createKeys(
        Array.from({ length: 20 }, () => ({ method: 'aes-256-gcm', secret: 'pw', port: 1234 })),
      );
      await store.deleteKey(k.id);
      await waitFor(() => heard.length === 4, {
        timeoutMs: 3000,
        message: () => `bulk + delete: ${heard.join(',')}`,
      });
      // The listener survives its connection being killed: it reconnects (and catches up).
      await c.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'ladder-listen'`,
      );
      await c.end();
      await waitFor(() => connected === 2 && listener.connected, { timeoutMs: 5000, message: 'reconnected' });
      await store.updateKey((await store.listKeys())[0]!.id, { name: 'renamed' });
      await sleep(300);
      assert.equal(heard.length, 4, 'a rename does not reach the data plane: not watched');
      await store.updateKey((await store.listKeys())[0]!.id, { secret: 'new' });
      await waitFor(() => heard.length === 5, { timeoutMs: 3000, message: 'a NOTIFY after the reconnect' });
    } finally {
      await listener.close();
      await store.close();
    }
  },
);

// `ladder nodes block|drain` that leaves no node in the keys says so: the keys then give the
// store's hostnameForAccessKeys (here a blocked node's own address), which used to happen in silence.
test(
  'blocking the last listed node says the keys fall back to hostnameForAccessKeys, and whose address it is',
  { skip: SKIP_WITHOUT_POSTGRES },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-nodes-fb-'));
    const store = await openStore(parseStoreLocation(pg!.url, dir));
    try {
      // The database the tests above used: only these two nodes here.
      for (const n of await store.nodes().list()) await store.nodes().remove(n.name, true);
      await store.updateSettings({ hostnameForAccessKeys: '203.0.113.1' });
      await store.nodes().register(info('fra-1', '203.0.113.1'), 'i1');
      await store.nodes().register(info('ams-1', '203.0.113.2'), 'i2');
      // Fresh heartbeats before each run: a node silent for 6 s is down, which changes the note.
      const nodes = async (...args: string[]) => {
        await store.nodes().heartbeat('fra-1', 'i1', 0);
        await store.nodes().heartbeat('ams-1', 'i2', 0);
        return runLadder(['nodes', '--store', pg!.url, ...args], { killAfterMs: 30_000 });
      };

      const first = await nodes('block', 'ams-1');
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout, 'node ams-1 is blocked\n');
      assert.equal(first.stderr, '', 'fra-1 is still listed: nothing to say');

      const last = await nodes('block', 'fra-1');
      assert.equal(last.code, 0, last.stderr);
      assert.equal(last.stdout, 'node fra-1 is blocked\n');
      assert.equal(
        last.stderr,
        'ladder: no node is listed in the keys now (every node is blocked, suspected or down): dynamic keys and subscriptions give hostnameForAccessKeys, 203.0.113.1 (an address of node fra-1, blocked); unblock a node, add one, or set it with PUT /server/hostname-for-access-keys\n',
      );

      // A mistyped name: the nearest node's name, nothing changed.
      const typo = await nodes('unblock', 'fra1');
      assert.equal(typo.code, 2);
      assert.equal(typo.stderr, 'ladder: no node named "fra1" (did you mean "fra-1"?)\n');
      assert.equal((await store.nodes().get('fra-1'))!.state, 'blocked');

      const back = await nodes('unblock', 'ams-1');
      assert.equal(back.code, 0, back.stderr);
      assert.equal(back.stderr, '');

      // Ending a drain: `undrain` is what people type (commander suggested `drain`, the opposite).
      assert.equal((await nodes('drain', 'ams-1')).code, 0);
      const undrained = await nodes('undrain', 'ams-1');
      assert.equal(undrained.code, 0, undrained.stderr);
      assert.equal(undrained.stdout, 'node ams-1 is active\n');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
