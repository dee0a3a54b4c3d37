/**
 * Managed mode on PostgreSQL (issue 16): `--node NAME`'s checks made before anything starts, the
 * fleet node started once the data plane, API and web front are up (the fleet code itself,
 * src/fleet, is loaded only with --node);
 * the usage-writer id and the key cache any node on PostgreSQL keeps.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FleetView, ShadowTlsEndpoint, WebEndpoint } from '../api/index.js';
import type { LadderMetrics } from '../metrics/index.js';
import { makeDirs } from '../shared/fs.js';
import type { Logger } from '../shared/logger.js';
import type { CachedKey, KeyCache, KyselyStore, NodeTransport, StoreLocation } from '../store/index.js';
import { UsageError } from './errors.js';
import type { FleetNode } from '../fleet/node.js';

/**
 * LADDER_STORE_POOL=N: the PostgreSQL store's pool size (default 3: see src/store/pg-pool.ts);
 * a node holds N + 2 connections at most (its LISTEN connection and its heartbeat's).
 */
export function storePoolOption(env: NodeJS.ProcessEnv): { poolSize?: number } {
  const v = env.LADDER_STORE_POOL;
  if (v === undefined || v === '') return {};
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 100)
    throw new UsageError(`LADDER_STORE_POOL must be a whole number of connections from 1 to 100, got "${v}"`);
  return { poolSize: Number(v) };
}

/** --node NAME: a valid name, and a PostgreSQL store (a fleet's nodes share one database). */
export async function checkNodeFlags(name: string, loc: StoreLocation): Promise<void> {
  const { checkNodeName, NodeError } = await import('../store/index.js');
  try {
    checkNodeName(name, '--node');
  } catch (err) {
    if (err instanceof NodeError) throw new UsageError(err.message);
    throw err;
  }
  if (loc.kind !== 'postgres')
    throw new UsageError(
      '--node needs a PostgreSQL store (--store postgres://…): the nodes of a fleet share one database; a SQLite store serves one server (drop --node)',
    );
}

export interface StartNodeOptions {
  name: string;
  loc: StoreLocation & { kind: 'postgres' };
  store: KyselyStore;
  enforcer: { refresh(opts?: { full?: boolean }): Promise<unknown> };
  metrics: LadderMetrics;
  log: Logger;
  /** Public hosts (--public-host, else the guessed one). */
  hosts: string[];
  port: number;
  udp: boolean;
  apiPort: number;
  web: WebEndpoint | undefined;
  /** This node's ShadowTLS port (per-key passwords), if it runs one. */
  shadowTls?: ShadowTlsEndpoint | undefined;
}

export interface RunningNode {
  node: FleetNode;
  /** The banner line. */
  line: string;
}

/**
 * The API's view of the fleet, before this node is registered (self() fills in once it is).
 * Refuses at once, before anything listens, a name whose node is running (fresh heartbeat).
 */
export type FleetViewOf = FleetView & { running?: RunningNode };

export async function fleetView(store: KyselyStore, name: string): Promise<FleetViewOf> {
  const nodes = store.nodes();
  const { DOWN_AFTER_MS } = await import('../store/index.js');
  const live = await nodes.get(name);
  if (live && !live.down)
    throw new UsageError(
      `node "${name}" is already running (heartbeat ${(live.heartbeatAgeMs / 1000).toFixed(1)} s ago; down after ${DOWN_AFTER_MS / 1000} s without one); stop it or choose another --node name`,
    );
  const view: FleetView & { running?: RunningNode } = {
    nodes,
    self: () => view.running?.node.status() ?? { name, keysVersion: 0, listening: false, notifications: 0 },
  };
  return view;
}

/** Register this node and keep it in the fleet (heartbeat, LISTEN for key changes). */
export async function startNode(o: StartNodeOptions): Promise<RunningNode> {
  const { startFleetNode } = await import('../fleet/node.js');
  const { ladderVersion } = await import('../api/version.js');
  const { DOWN_AFTER_MS, HEARTBEAT_MS, NodeError } = await import('../store/index.js');
  const transports: NodeTransport[] = [{ type: 'shadowsocks', port: o.port, udp: o.udp }];
  if (o.web) transports.push({ type: 'websocket', ...o.web });
  if (o.shadowTls) {
    const { port, sni, udp } = o.shadowTls;
    transports.push({ type: 'shadowtls', port, sni, udp, passwords: 'per-key' });
  }
  const registry = o.store.nodes();
  let node: FleetNode;
  try {
    node = await startFleetNode({
      registry,
      url: o.loc.url,
      info: {
        name: o.name,
        addresses: o.hosts,
        port: o.port,
        transports,
        version: ladderVersion(),
        apiPort: o.apiPort,
      },
      enforcer: o.enforcer,
      log: o.log.child({ node: o.name }),
      // LADDER_FLEET_NOTIFY=0 (or off): no LISTEN, polling alone (diagnosis; the tests' negative control).
      notify: !['0', 'off'].includes(process.env.LADDER_FLEET_NOTIFY ?? ''),
      onNodes: (nodes, version) => o.metrics.setFleet(nodes, version),
    });
  } catch (err) {
    if (err instanceof NodeError) throw new UsageError(err.message);
    throw err;
  }
  if (process.env.LADDER_REPORT_KEYS !== undefined || process.env.LADDER_REPORT_WINDOW_S !== undefined)
    o.log.warn(
      'LADDER_REPORT_KEYS and LADDER_REPORT_WINDOW_S are no longer read: the threshold is a store setting (PUT /server/blocked-address-reports)',
    );
  const st = node.status();
  const line = `fleet node ${o.name} on postgres (${o.hosts.join(', ')}; heartbeat every ${HEARTBEAT_MS / 1000} s, down after ${DOWN_AFTER_MS / 1000} s; key changes ${st.listening ? 'by LISTEN/NOTIFY, polling as fallback' : 'by polling only (LISTEN off or not connected yet)'})`;
  return { node, line };
}

// What a node keeps beside the shared database: its name as a usage writer, and the last key
// set it applied (so it can start while the database is down). See docs/fleet.md.

const NODE_ID_FILE = 'node-id';

/** The node's usage-writer id: --node NAME, else an id made once and kept in the data directory. */
export function nodeWriterId(node: string | undefined, dataDir: string): string {
  if (node !== undefined && node !== '') return node;
  const file = join(dataDir, NODE_ID_FILE);
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (/^[\w.-]{1,64}$/.test(id)) return id;
  } catch {
    // none yet
  }
  const id = `node-${randomBytes(6).toString('hex')}`;
  makeDirs(dataDir);
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}

/**
 * The store did not answer at start (opened offline): the cached key set to serve until it does,
 * or a refusal when there is none. Says so in one line either way.
 */
export async function cachedKeysForOfflineStart(
  store: KyselyStore,
  dataDir: string,
  log: Logger,
): Promise<KeyCache | undefined> {
  if (store.available) return undefined;
  const { KEY_CACHE_FILE, loadKeyCache, StoreError } = await import('../store/index.js');
  const file = join(dataDir, KEY_CACHE_FILE);
  let cache: KeyCache | undefined;
  try {
    cache = loadKeyCache(file);
  } catch (err) {
    await store.close();
    if (err instanceof StoreError) throw new UsageError(err.message);
    throw err;
  }
  if (!cache) {
    await store.close();
    throw new UsageError(
      `store: PostgreSQL is unreachable and this node has no cached key set (${file}); it cannot start without the store`,
    );
  }
  log.warn(
    { keys: cache.keys.length, file },
    'store unreachable at start: serving the cached key set until it is back (the management API starts then)',
  );
  return cache;
}

/** Keeps the node's key cache equal to the key set its enforcer applied (owner-only, atomic). */
export async function keyCacheWriter(
  dataDir: string,
  port: () => number,
  log: Logger,
): Promise<(active: readonly CachedKey[]) => void> {
  const { KEY_CACHE_FILE, saveKeyCache } = await import('../store/index.js');
  const file = join(dataDir, KEY_CACHE_FILE);
  return (active) => {
    try {
      makeDirs(dataDir);
      saveKeyCache(file, { savedAt: Date.now(), port: port(), keys: [...active] });
    } catch (err) {
      log.warn({ file, err: (err as Error).message }, 'cannot write the key cache');
    }
  };
}
