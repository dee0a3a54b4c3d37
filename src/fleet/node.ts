/**
 * One fleet node (`ladder server --store postgres://… --node NAME`): registers itself in the
 * nodes table, writes a heartbeat every HEARTBEAT_MS, applies key changes the moment another
 * node or the CLI commits them (KeyListener → enforcer.refresh(), which applies a delta), and
 * feeds the fleet gauges. Loaded only with --node (idle memory of a single server).
 */
import { randomUUID } from 'node:crypto';
import type { FleetNodeSample } from '../metrics/index.js';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import {
  HEARTBEAT_MS,
  NodeError,
  type NodeInfo,
  type NodeRecord,
  type NodeRegistry,
} from '../store/index.js';
import { HeartbeatThread } from './heartbeat-thread.js';
import { KeyListener } from './key-listener.js';

export interface FleetNodeOptions {
  registry: NodeRegistry;
  /** The PostgreSQL URL, for the listening connection. */
  url: string;
  info: NodeInfo;
  /** The key enforcer: refresh() re-reads the keys and hands the data plane what changed. */
  enforcer: { refresh(opts?: { full?: boolean }): Promise<unknown> };
  log: Logger;
  clock?: Clock;
  /** false: no LISTEN (diagnosis, and the tests' negative control): only polling applies changes. */
  notify?: boolean;
  heartbeatMs?: number;
  /** After every heartbeat: every node as the gauges show it, and the store's keys version. */
  onNodes?: (nodes: readonly FleetNodeSample[], storeKeysVersion: number) => void;
}

export interface FleetNodeStatus {
  name: string;
  /** The keys version this node has applied (reported in its heartbeat). */
  keysVersion: number;
  listening: boolean;
  notifications: number;
}

export interface FleetNode {
  readonly name: string;
  status(): FleetNodeStatus;
  /** Call after every enforcer evaluation (it lets polling advance the applied keys version). */
  evaluated(): void;
  close(): Promise<void>;
}

/** The gauge view of a node: its stored state, or 'down' when its heartbeat is stale. */
export function sampleOf(n: NodeRecord): FleetNodeSample {
  return {
    name: n.name,
    state: n.down ? 'down' : n.state,
    heartbeatAgeSeconds: n.stopped ? -1 : n.heartbeatAgeMs / 1000,
    keysVersion: n.keysVersion,
  };
}

/** Register and run; throws NodeError NODE_RUNNING when a live process already holds the name. */
export async function startFleetNode(o: FleetNodeOptions): Promise<FleetNode> {
  const clock = o.clock ?? systemClock;
  const instance = randomUUID();
  const { registry, info, log } = o;
  await registry.register(info, instance);
  let applied = 0;
  let notifications = 0;
  let evaluations = 0;
  /** A version read at a heartbeat, applied once an evaluation started after the read has ended. */
  let polled: { version: number; evaluations: number } | undefined;
  let closed = false;

  /**
   * Read the version, re-evaluate, then claim it: the evaluation saw every change up to it. A delta
   * read is enough: changes missed while deaf carry versions above the applied one (the enforcer
   * reads every key after a store outage and every 5 min anyway). A full read here made every
   * listener reconnect cost a read of every key (issue 16's bench: 10,000 rows per reconnect on
   * nodes already short of CPU).
   */
  const catchUp = async (): Promise<void> => {
    const v = await registry.keysVersion();
    await o.enforcer.refresh();
    applied = Math.max(applied, v);
  };
  const listener =
    o.notify === false
      ? undefined
      : new KeyListener({
          url: o.url,
          log,
          clock,
          onChange: (v) => {
            notifications++;
            void o.enforcer.refresh().then(
              () => (applied = Math.max(applied, v)),
              (err: unknown) => log.warn({ err: String(err) }, 'applying a key change failed'),
            );
          },
          onConnect: () => {
            catchUp().catch((err: unknown) => log.warn({ err: String(err) }, 'key catch-up failed'));
          },
        });
  await listener?.start();
  if (!listener) await catchUp();

  // The heartbeat itself is written by a thread of its own (a stalled management thread must not
  // make a relaying node look down); this thread keeps the applied version and the gauges.
  let failing = false;
  let registering = false;
  const heartbeat = new HeartbeatThread({
    url: o.url,
    name: info.name,
    instance,
    intervalMs: o.heartbeatMs ?? HEARTBEAT_MS,
    applied,
    onBeat: (ok, error) => {
      if (error !== undefined) {
        if (!failing) log.warn({ err: error }, 'node heartbeat failed');
        failing = true;
        return;
      }
      failing = false;
      if (ok || registering || closed) return;
      // Removed (ladder nodes rm --force) or taken over: claim it again unless someone live holds it.
      log.warn({ node: info.name }, 'node row missing or taken over; registering again');
      registering = true;
      registry
        .register(info, instance)
        .catch((err: unknown) => log.warn({ err: String(err) }, 'registering the node again failed'))
        .finally(() => (registering = false));
    },
  });
  let timer: Timer | undefined;
  const beat = async (): Promise<void> => {
    if (polled && evaluations >= polled.evaluations + 2) applied = Math.max(applied, polled.version);
    const current = await registry.keysVersion();
    if (current > applied && (!polled || polled.version !== current))
      polled = { version: current, evaluations };
    heartbeat.applied(applied);
    if (o.onNodes) o.onNodes((await registry.list()).map(sampleOf), current);
  };
  const schedule = (): void => {
    if (closed) return;
    timer = clock.setTimeout(() => {
      beat()
        .catch((err: unknown) => {
          const msg =
            err instanceof NodeError ? err.message : err instanceof Error ? err.message : String(err);
          log.debug({ err: msg }, 'fleet gauges not refreshed');
        })
        .finally(schedule);
    }, o.heartbeatMs ?? HEARTBEAT_MS);
    timer.unref?.();
  };
  await beat().catch(() => undefined);
  schedule();

  return {
    name: info.name,
    status: () => ({
      name: info.name,
      keysVersion: applied,
      listening: listener?.connected ?? false,
      notifications,
    }),
    evaluated: () => void evaluations++,
    async close() {
      closed = true;
      if (timer) clock.clearTimeout(timer);
      await heartbeat.close();
      await listener?.close();
      await registry.leave(info.name, instance).catch(() => undefined);
    },
  };
}
