/**
 * A data-plane worker thread: one ShadowsocksServer on a listening socket of its own (an
 * SO_REUSEPORT socket the main thread made, or its own listener when it is the only worker),
 * with the replay filters shared through SharedArrayBuffers. Keys arrive as deltas; byte counts,
 * connection events and open-connection counts go back to the main thread in batches.
 */
import { readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { setNativeEnabled } from '../../protocol/shadowsocks/native.js';
import { envSwitch } from '../../shared/env.js';
import { createLogger } from '../../shared/logger.js';
import type { AuthEvent, ConnectionClosedEvent } from '../events.js';
import { ShadowsocksServer } from '../server.js';
import type { FromWorker, ToWorker, WorkerInit } from './messages.js';
import { EventPacker, packedEventsFromEnv } from './event-batch.js';
import { LoopMeter } from './loop-stats.js';
import { sharedReplayFilters } from './shared-salts.js';
import { adoptSpeedBuckets } from './shared-buckets.js';
import { useDevices } from './shared-devices.js';

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (m: FromWorker): void => port.postMessage(m);
if (!init.native) setNativeEnabled(false);

const log = createLogger({ level: init.logLevel }).child({ worker: init.index });
// Start-up info lines would come before the main thread's banner: warnings and errors only until
// listening (the main thread says it listens).
const level = log.level;
if (log.isLevelEnabled('info')) log.level = 'warn';
let usage: [string, number, number][] = [];
let opened = 0;
let authenticated: AuthEvent[] = [];
let closed: ConnectionClosedEvent[] = [];
const packer = packedEventsFromEnv() ? new EventPacker() : undefined;
let openDirty = true;
const meter = new LoopMeter();
/**
 * The report's timer: armed by the first event after a report (LADDER_TIMERS_ON_DEMAND, on by
 * default), so an idle worker is not woken every reportMs to find nothing to say; =0: an interval.
 */
const onDemand = envSwitch('LADDER_TIMERS_ON_DEMAND');
let reporter: NodeJS.Timeout | undefined;
let closing = false; // the close's own report is the last
const due = (): void => {
  if (reporter === undefined && !closing) reporter = setTimeout(onTimer, init.reportMs).unref();
};

adoptSpeedBuckets(init.speedBuckets); // before the server: its keys' buckets are claimed there
const server = new ShadowsocksServer({
  keys: init.keys,
  logger: log,
  timeouts: {
    ...(init.idleMs !== undefined ? { idleMs: init.idleMs } : {}),
    ...(init.connectMs !== undefined ? { connectMs: init.connectMs } : {}),
  },
  allowPrivateDestinations: init.allowPrivateDestinations,
  udpOverTcp: init.udpOverTcp,
  ...(init.replayCapacity !== undefined ? { replayCapacity: init.replayCapacity } : {}),
  ...(init.pending !== undefined ? { pending: init.pending } : {}),
  lookupGate: { memory: init.lookupGate, row: init.lookupRow },
  devices: useDevices(init.devices),
  ...(init.replay ? { replayFilters: sharedReplayFilters(init.replay) } : {}),
  ...(init.usageFlushMs !== undefined ? { usageFlushMs: init.usageFlushMs } : {}),
  // Refusals are logged by the main thread, once for all workers (pool.ts), from the closed events.
  refusalLog: false,
  udp: init.udp,
  usage: {
    // The meter calls this once per key per flush; one message per flush.
    addBytes(id, up, down) {
      if (usage.length === 0) queueMicrotask(sendUsage);
      usage.push([id, up, down]);
    },
  },
  hooks: {
    onConnectionOpened: () => {
      opened++;
      if (onDemand) due();
    },
    onAuthenticated: (e) => {
      if (packer) packer.authenticated(e);
      else authenticated.push(e);
      openDirty = true;
      if (onDemand) due();
    },
    onConnectionClosed: (e) => {
      if (packer) packer.closed(e);
      else closed.push(e);
      if (e.keyId !== undefined) openDirty = true;
      if (onDemand) due();
    },
  },
});

/** Linux: this thread's id (/proc/thread-self is "PID/task/TID"); undefined elsewhere. */
function threadId(): number | undefined {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return undefined;
  }
}

function sendUsage(): void {
  if (usage.length === 0) return;
  post({ t: 'usage', counts: usage });
  usage = [];
}

function report(): void {
  const none = authenticated.length === 0 && closed.length === 0 && (packer?.empty ?? true);
  if (opened === 0 && none && !openDirty) return;
  const open = openDirty ? [...server.openConnections()] : undefined;
  const packed = packer && !packer.empty ? packer.take() : undefined;
  post({ t: 'events', opened, authenticated, closed, open, ...(packed ? { packed } : {}) });
  opened = 0;
  authenticated = [];
  closed = [];
  openDirty = false;
}
function onTimer(): void {
  reporter = undefined;
  report();
}
if (!onDemand) reporter = setInterval(report, init.reportMs).unref();

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'delta': {
      const t0 = performance.now();
      server.applyKeyDelta(m.delta);
      post({ t: 'applied', seq: m.seq });
      meter.delta(performance.now() - t0);
      break;
    }
    case 'loopStats':
      post({ t: 'loopStats', stats: meter.take() });
      break;
    case 'closeKey':
      server.closeKeyConnections(m.id);
      break;
    case 'crash':
      if (init.testHooks) {
        setImmediate(() => {
          throw new Error('data-plane worker crash requested by a test');
        });
      }
      break;
    case 'close':
      closing = true;
      clearTimeout(reporter); // either kind
      reporter = undefined;
      meter.stop();
      void server.close().then(() => {
        report();
        sendUsage();
        post({ t: 'closed' });
        port.close();
      });
      break;
  }
});

server
  .listen({
    port: init.port,
    host: init.host,
    ...(init.fd !== undefined ? { fd: init.fd } : {}),
    ...(init.udpFd ? { udpFd: init.udpFd } : {}),
  })
  .then(
    (a) => {
      log.level = level;
      post({ t: 'ready', port: a.port, address: a.address, family: a.family, tid: threadId() });
    },
    (err: NodeJS.ErrnoException) => {
      post({ t: 'failed', code: err.code, message: err.message });
      port.close();
    },
  );
