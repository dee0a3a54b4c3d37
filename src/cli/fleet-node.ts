/**
 * Managed mode's `--node NAME` (issue 16): checks made before anything starts, and the fleet
 * node started once the data plane, API and web front are up. Loaded only with --node.
 */
import type { FleetView, WebEndpoint } from '../api/index.js';
import type { LadderMetrics } from '../metrics/index.js';
import type { Logger } from '../shared/logger.js';
import type { KyselyStore, NodeTransport, StoreLocation } from '../store/index.js';
import { ladderVersion } from '../api/version.js';
import { UsageError } from './errors.js';
import type { FleetNode } from '../fleet/node.js';

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
  enforcer: { refresh(): Promise<unknown> };
  metrics: LadderMetrics;
  log: Logger;
  /** Public hosts (--public-host, else the guessed one). */
  hosts: string[];
  port: number;
  udp: boolean;
  apiPort: number;
  web: WebEndpoint | undefined;
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
export async function fleetView(
  store: KyselyStore,
  name: string,
): Promise<FleetView & { running?: RunningNode }> {
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
  const { DOWN_AFTER_MS, HEARTBEAT_MS, NodeError } = await import('../store/index.js');
  const transports: NodeTransport[] = [{ type: 'shadowsocks', port: o.port, udp: o.udp }];
  if (o.web) transports.push({ type: 'websocket', ...o.web });
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
      // LADDER_FLEET_NOTIFY=off: no LISTEN, polling alone (diagnosis; the tests' negative control).
      notify: process.env.LADDER_FLEET_NOTIFY !== 'off',
      onNodes: (nodes, version) => o.metrics.setFleet(nodes, version),
    });
  } catch (err) {
    if (err instanceof NodeError) throw new UsageError(err.message);
    throw err;
  }
  const st = node.status();
  const line = `fleet node ${o.name} on postgres (${o.hosts.join(', ')}; heartbeat every ${HEARTBEAT_MS / 1000} s, down after ${DOWN_AFTER_MS / 1000} s; key changes ${st.listening ? 'by LISTEN/NOTIFY, polling as fallback' : 'by polling only (LISTEN off or not connected yet)'})`;
  return { node, line };
}
