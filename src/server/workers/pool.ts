/**
 * The multi-worker data plane, main-thread side: N worker threads (data-plane.worker.ts), each with its own
 * SO_REUSEPORT listening socket on the same port, sharing the replay filters (SharedArrayBuffers,
 * shared-salts.ts). The main thread keeps what is not per-connection: the replay state file (load
 * before the workers start, save while running and at close), the key set (each change posted to
 * every worker as a delta), the usage sink (workers post batched byte counts: each byte is counted
 * by the one worker that carried it) and the hooks (events posted in batches, so metrics are
 * aggregated in one registry). UDP runs in worker 0 only.
 *
 * Workers start on demand (default where the addon is): at boot this thread makes the listening
 * sockets (and the UDP socket) and only watches them (native fd_watch.cc); the first connection
 * or datagram starts every worker, and they accept what waits in the backlog. Until then the
 * process runs no worker thread (each costs ~10 MiB idle). `startAtBoot` starts them at once.
 */
import type { PendingCaps } from '../pending-limits.js';
import { availableParallelism } from 'node:os';
import type { AddressInfo } from 'node:net';
import { nativeAvailable } from '../../protocol/shadowsocks/native.js';
import { systemClock } from '../../shared/clock.js';
import type { RuntimeKey, ServerControl, UsageSink } from '../../shared/control.js';
import type { Logger } from '../../shared/logger.js';
import type { ServerHooks } from '../events.js';
import { keyDelta, type KeyDelta } from '../keys.js';
import {
  DEFAULT_REPLAY_CAPACITY,
  ReplayState,
  replayStateFile,
  type ReplayFilters,
  type ReplayStore,
} from '../replay-state.js';
import { clearLookupRow, lookupRowsFor } from '../name-cache-env.js';
import { RefusalLog } from '../refusal-log.js';
import type { UdpRelayOptions } from '../udp-relay.js';
import { unpackEvents } from './event-batch.js';
import type { FromWorker, LoopStats, ToWorker, WorkerInit } from './messages.js';
import {
  assertPortFree,
  bindAddress,
  closeFd,
  listenReusePort,
  localPort,
  onDemandAvailable,
  reusePortAvailable,
  udpBindFirst,
  watchReadable,
} from './reuseport.js';
import { createSharedReplay, sharedReplayFilters } from './shared-salts.js';
import { speedBucketsBuffer } from './shared-buckets.js';
import { processDevices } from './shared-devices.js';
import { processDeviceCounts } from '../device-limits.js';
import {
  closeHandedSockets,
  closeIfStillOpen,
  errorName,
  Handle,
  socketInode,
  type WorkerStats,
} from './handle.js';
import { Supervisor } from './supervisor.js';

/** How long close() waits for the workers to close their servers before terminating them. */
const STOP_MS = 5000;

/** LADDER_EAGER_WORKERS=1: start the data-plane workers at boot, not at the first connection. */
export function workersAtBootFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.LADDER_EAGER_WORKERS === '1';
}

/** Default number of data-plane workers: one per core. */
export function defaultWorkers(): number {
  return availableParallelism();
}

export interface WorkerPlaneOptions {
  /** Data-plane workers (default: the number of cores); 1 still keeps the data plane off this thread. */
  workers?: number;
  keys: readonly RuntimeKey[];
  port: number;
  host?: string | undefined;
  logger: Logger;
  /** The workers' log level (they log to stderr themselves; default: the logger's). */
  logLevel?: string;
  usage?: UsageSink;
  hooks?: ServerHooks;
  timeouts?: { idleMs?: number; connectMs?: number };
  allowPrivateDestinations?: boolean;
  replayCapacity?: number;
  /** Caps on pending connections, per worker (server.ts ServerOptions.pending). */
  pending?: PendingCaps | false;
  replayStateFile?: string;
  replayStore?: ReplayStore;
  replaySaveMs?: number;
  usageFlushMs?: number;
  udp?: boolean | UdpRelayOptions;
  /** UDP-over-TCP in every worker (default: when `udp` is on; only worker 0 has the UDP socket). */
  udpOverTcp?: boolean;
  /** The refusal log's windows (server.ts); false: no refusal lines. */
  refusalLog?: { repeatMs?: number; unauthenticatedMs?: number } | false;
  /** How often workers post events and open-connection counts (default 250 ms). */
  reportMs?: number;
  /** Tests only (the negative control): false gives each worker replay filters of its own. */
  shareReplay?: boolean;
  /** Tests only: called with each batch of events and the worker that posted it. */
  onWorkerEvents?: (worker: number, m: Extract<FromWorker, { t: 'events' }>) => void;
  /**
   * A worker that stops unexpectedly is started again on a new listening socket of the same port,
   * with the current keys (default); false leaves it down (tests: the negative control).
   */
  restart?: WorkerRestartOptions | false;
  /**
   * Called once, with one line saying why, when crashed workers are no longer restarted (more
   * than `maxPerMinute` restarts): the composition root stops the server.
   */
  onGiveUp?: (reason: string) => void;
  /** Tests only: the plane gets crashWorker(index), which makes that worker throw. */
  testHooks?: boolean;
  /** Tests only: start worker `worker` `ms` later than the others (a crash during the start). */
  testStartDelay?: { worker: number; ms: number };
  /**
   * Start the workers before resolving (the first connection then waits for no thread start);
   * default false: they start at the first connection or datagram, where the addon can watch.
   */
  startAtBoot?: boolean;
  /**
   * Lower this thread's priority (the management plane's) below the workers': called once, when
   * every worker listens for the first time (at boot or at the first connection). Before it, the
   * pool starts a supervisor thread (supervisor.ts) at the workers' priority, which creates the
   * workers started later (restarts), so they do not inherit this thread's lower priority.
   */
  lowerPriority?: () => void;
}

export interface WorkerRestartOptions {
  /** Restarts (all workers together) allowed in any 60 s; one more stops restarting (default 5). */
  maxPerMinute?: number;
  /** Delay before a restart, doubled for each restart in the last minute, at most 5 s (default 100 ms). */
  backoffMs?: number;
}

export type { WorkerStats } from './handle.js';

/** The data plane as the management plane drives it (the same seam as one ShadowsocksServer). */
export interface WorkerPlane extends ServerControl {
  readonly address: AddressInfo;
  /** Workers the plane runs (1 when SO_REUSEPORT sockets cannot be made here), once started. */
  readonly workers: number;
  /** The workers run (false while they wait for the first connection or datagram). */
  readonly started: boolean;
  /** Resolves once every worker listens (at once when they started at boot); rejects if one cannot. */
  whenStarted(): Promise<void>;
  /** The replay state this thread loads and saves (the filters are the workers'). */
  readonly replayState: ReplayState;
  /**
   * The workers' replay filters, for a server on this thread to check salts against too (the
   * web front's), so a connection recorded on this port is refused there and the other way round.
   */
  readonly replayFilters: ReplayFilters;
  /** The current key set. */
  readonly keys: readonly RuntimeKey[];
  /**
   * What each worker reported so far (index = worker): connections accepted, authenticated, and
   * closed by status (as of the latest report, every `reportMs`).
   */
  workerStats(): readonly WorkerStats[];
  /** Tests only (testHooks): make worker `index` throw an uncaught error. */
  crashWorker?(index: number): void;
  /**
   * Diagnostics: each running worker's event-loop delay, GC pauses and key-delta times since the
   * previous call (the first call starts measuring and gives zeros); see loop-stats.ts.
   */
  loopStats(): Promise<LoopStats[]>;
  /**
   * Change only the keys a delta names, in every worker. Resolves once every worker applied it,
   * so a key the API has just created works in whichever worker its first connection reaches.
   */
  applyKeyDelta(delta: KeyDelta): Promise<void>;
  saveReplayState(): Promise<void>;
  close(): Promise<void>;
}

/** Start the workers and resolve once every one is listening. */
export async function startWorkerPlane(opts: WorkerPlaneOptions): Promise<WorkerPlane> {
  const log = opts.logger;
  let wanted = opts.workers ?? defaultWorkers();
  if (!Number.isSafeInteger(wanted) || wanted < 1)
    throw new RangeError(`workers must be a positive integer, got ${wanted}`);
  if (wanted > 1 && !reusePortAvailable()) {
    log.warn(
      { workers: wanted },
      'several data-plane workers need the native addon (SO_REUSEPORT); running one',
    );
    wanted = 1;
  }
  const capacity = opts.replayCapacity ?? DEFAULT_REPLAY_CAPACITY;
  const bufs = createSharedReplay(capacity);
  const filters = sharedReplayFilters(bufs);
  const store =
    opts.replayStore ?? (opts.replayStateFile ? replayStateFile(opts.replayStateFile) : undefined);
  const replay = new ReplayState({
    clock: systemClock,
    log,
    store,
    capacity,
    ...(opts.replaySaveMs !== undefined ? { saveMs: opts.replaySaveMs } : {}),
    filters,
  });
  await replay.load();

  const keys = new Map(opts.keys.map((k) => [k.id, k]));
  const handles: Handle[] = [];
  let seq = 0;
  let closing = false;
  const usage = opts.usage;
  const hooks = opts.hooks ?? {};
  // One refusal log for all workers (each closed event reaches it once), so its rate limits hold
  // for the server, not per worker thread.
  const refusals =
    opts.refusalLog === false ? undefined : new RefusalLog({ log, clock: systemClock, ...opts.refusalLog });
  const onMessage = (h: Handle, msg: FromWorker): void => {
    const m = msg.t === 'events' && msg.packed ? { ...msg, ...unpackEvents(msg.packed) } : msg;
    if (m.t === 'usage') {
      for (const [id, up, down] of m.counts) {
        try {
          usage?.addBytes(id, up, down);
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'usage sink failed');
        }
      }
    } else if (m.t === 'events') {
      if (m.open) h.open = new Map(m.open);
      h.live += m.opened - m.closed.length;
      h.stats.opened += m.opened;
      h.stats.authenticated += m.authenticated.length;
      for (const e of m.closed) h.stats.closed[e.status] = (h.stats.closed[e.status] ?? 0) + 1;
      for (let i = 0; i < m.opened; i++) hooks.onConnectionOpened?.();
      for (const e of m.authenticated) hooks.onAuthenticated?.(e);
      for (const e of m.closed) {
        refusals?.closed(e);
        hooks.onConnectionClosed?.(e);
      }
      opts.onWorkerEvents?.(h.index, m);
    }
  };
  // Restarts: an unexpected exit is logged (the error's class and code; its message, which may
  // name a destination, only at debug), its connections counted as lost, and the worker started
  // again after a backoff, within a budget per minute; past the budget the pool gives up.
  const restart = opts.restart === false ? undefined : (opts.restart ?? {});
  const maxPerMinute = restart?.maxPerMinute ?? 5;
  const backoffMs = restart?.backoffMs ?? 100;
  const recent: number[] = []; // restart times in the last minute
  const timers = new Set<NodeJS.Timeout>();
  let gaveUp = false;
  let up = false; // every worker listened once: from then on a stop is a crash to restart
  const onExit = (h: Handle, code: number): void => {
    closeHandedSockets(h); // its thread is gone: nothing registers them any more
    if (closing || handles[h.index] !== h) return;
    if (h.error) log.debug({ worker: h.index, err: h.error.line }, 'data-plane worker error');
    const error = errorName(h);
    const lost = Math.max(0, h.live);
    h.live = 0;
    h.open = new Map();
    hooks.onWorkerCrashed?.({ worker: h.index, lostConnections: lost });
    const now = Date.now();
    while (recent.length > 0 && now - recent[0]! >= 60_000) recent.shift();
    const what = { worker: h.index, code, error, lostConnections: lost };
    // A worker that listened is restarted even while the others still start (worker 0 owns UDP);
    // one that never listened failed its start, which the start's rejection reports.
    if (!up && !h.ready) {
      log.debug(what, 'data-plane worker stopped before listening');
      return;
    }
    if (restart === undefined || gaveUp) {
      log.error(what, 'data-plane worker stopped; not restarted');
      return;
    }
    if (recent.length >= maxPerMinute) {
      gaveUp = true;
      const reason =
        `data-plane worker ${h.index} stopped unexpectedly (${error ?? `exit code ${code}`}) after ` +
        `${recent.length} restarts within a minute; stopping the server (LADDER_LOG_LEVEL=debug logs the error)`;
      log.error(what, reason);
      opts.onGiveUp?.(reason);
      return;
    }
    recent.push(now);
    const delay = Math.min(5000, backoffMs * 2 ** (recent.length - 1));
    log.error({ ...what, restartInMs: delay }, 'data-plane worker stopped unexpectedly; restarting it');
    const timer = setTimeout(() => {
      timers.delete(timer);
      void respawn(h);
    }, delay);
    timers.add(timer);
  };
  // This pool's rows in the process's name-lookup counters (the main thread's caches count there too).
  const lookupRows = lookupRowsFor(wanted);
  const base = {
    host: opts.host,
    keys: opts.keys,
    replay: opts.shareReplay === false ? undefined : bufs,
    lookupGate: lookupRows.memory,
    speedBuckets: speedBucketsBuffer(),
    devices: processDevices().buffers,
    replayCapacity: opts.replayCapacity,
    pending: opts.pending,
    idleMs: opts.timeouts?.idleMs,
    connectMs: opts.timeouts?.connectMs,
    allowPrivateDestinations: opts.allowPrivateDestinations ?? false,
    udpOverTcp: opts.udpOverTcp ?? (opts.udp !== undefined && opts.udp !== false),
    usageFlushMs: opts.usageFlushMs,
    reportMs: opts.reportMs ?? 250,
    logLevel: opts.logLevel ?? log.level,
    native: nativeAvailable(),
    testHooks: opts.testHooks === true,
  };
  const start = (
    index: number,
    fd: number | undefined,
    port: number,
    stats: WorkerStats,
    udpFd?: { fd: number; family: 4 | 6; ip: string },
  ): Promise<Extract<FromWorker, { t: 'ready' }>> =>
    new Promise((resolve, reject) => {
      let failed: Error | undefined;
      clearLookupRow(base.lookupGate, lookupRows.first + index); // a dead worker's lookups hold no slot
      const init: WorkerInit = {
        ...base,
        keys: [...keys.values()], // a restarted worker starts with the current keys
        index,
        lookupRow: lookupRows.first + index,
        fd,
        port,
        udp: index === 0 ? (opts.udp ?? false) : false,
        udpFd,
      };
      const h = new Handle(
        index,
        stats,
        init,
        (hh, m) => {
          if (m.t === 'ready') {
            hh.stats.tid = m.tid;
            hh.ready = true;
            resolve(m);
          } else if (m.t === 'failed') {
            // Its loop may still hold the sockets: end the thread, and reject once it has exited
            // (the exit closes what its teardown left open, never a socket it still uses).
            failed = Object.assign(new Error(m.message), { code: m.code });
            void hh.worker.terminate();
          } else onMessage(hh, m);
        },
        (hh, code) => {
          const why = errorName(hh);
          reject(
            failed ??
              new Error(
                `data-plane worker ${index} exited (${code}) before listening${why ? `: ${why}` : ''} (LADDER_LOG_LEVEL=debug logs the error)`,
              ),
          );
          onExit(hh, code);
        },
        supervisor,
      );
      h.fd = fd;
      h.fdInode = fd === undefined ? undefined : socketInode(fd);
      h.udpFd = udpFd?.fd;
      h.udpInode = udpFd === undefined ? undefined : socketInode(udpFd.fd);
      handles[index] = h;
    });

  const stats: WorkerStats[] = [];
  let supervisor: Supervisor | undefined;
  type Held = { fds: number[]; udp: { fd: number; family: 4 | 6; ip: string } | undefined };
  // On demand: the sockets this thread holds until the workers take them, and the watch on them.
  let held: Held | undefined;
  let unwatch: (() => void) | undefined;
  let fire: (() => void) | undefined; // ends the wait for the first connection (closing: nothing starts)
  const release = (): void => {
    fire?.();
    unwatch?.();
    unwatch = undefined;
    for (const fd of held?.fds ?? []) closeFd(fd);
    if (held?.udp) closeFd(held.udp.fd);
    held = undefined;
  };
  const stopAll = async (): Promise<void> => {
    closing = true;
    release();
    for (const t of timers) clearTimeout(t);
    timers.clear();
    for (const h of handles) h.send({ t: 'close' });
    // A worker that no longer answers (stuck) is terminated after STOP_MS all the same.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, STOP_MS)));
    await Promise.race([Promise.all(handles.map((h) => h.closed)), late]);
    clearTimeout(timer);
    // A worker the supervisor created exits when the supervisor says so; should that answer
    // never come, closing the supervisor thread ends its nested workers with it.
    const gone = new Promise<void>((r) => (timer = setTimeout(r, STOP_MS)));
    await Promise.race([Promise.all(handles.map((h) => h.worker.terminate())), gone]);
    clearTimeout(timer);
    await supervisor?.close();
    // What the workers' lookups held no longer counts against the main thread's (shared memory).
    for (let i = 0; i < wanted; i++) clearLookupRow(base.lookupGate, lookupRows.first + i);
  };

  for (let i = 0; i < wanted; i++) stats.push({ opened: 0, authenticated: 0, closed: {}, restarts: 0 });
  const onDemand = opts.startAtBoot !== true && onDemandAvailable();
  // Start every worker on the sockets made for them (one per worker, or worker 0's own listener).
  const startWorkers = async (fds: readonly number[] | undefined, port: number, udpFd?: Held['udp']) => {
    if (fds === undefined) return [await start(0, undefined, port, stats[0]!)];
    const delay = opts.testStartDelay;
    return Promise.all(
      fds.map(async (fd, i) => {
        const udp = i === 0 ? udpFd : undefined;
        const inodes = [socketInode(fd), udp && socketInode(udp.fd)];
        try {
          if (delay?.worker === i) await new Promise((r) => setTimeout(r, delay.ms));
          if (closing) throw new Error('the data plane closed during its start');
          return await start(i, fd, port, stats[i]!, udp);
        } catch (err) {
          // Rejected once its thread exited (or never made): close what is still these sockets.
          closeIfStillOpen(fd, inodes[0]);
          if (udp) closeIfStillOpen(udp.fd, inodes[1]);
          throw err;
        }
      }),
    );
  };
  let address: AddressInfo;
  let addrs: { family: 4 | 6; ip: string }[] = [];
  let started: Promise<void>;
  let isStarted = false;
  const markStarted = (): void => {
    isStarted = true;
    replay.start();
    up = true;
    if (opts.lowerPriority && !closing) {
      supervisor = new Supervisor(); // its thread exists now, at the workers' priority
      opts.lowerPriority();
    }
  };
  try {
    if (wanted === 1 && !onDemand) {
      const r = await start(0, undefined, opts.port, stats[0]!);
      address = { port: r.port, address: r.address, family: r.family };
    } else {
      // Every socket first (the first fixes the port when port 0 asked for any), then every
      // worker at once.
      addrs = await bindAddress(opts.host);
      const fds: number[] = [];
      let udpFd: Held['udp'];
      try {
        await assertPortFree(addrs, opts.port);
        fds.push(listenReusePort(addrs, opts.port));
        const port = localPort(fds[0]!);
        while (fds.length < wanted) fds.push(listenReusePort(addrs, port));
        if (onDemand && opts.udp !== undefined && opts.udp !== false) udpFd = udpBindFirst(addrs, port);
      } catch (err) {
        for (const fd of fds) closeFd(fd);
        throw err;
      }
      const port = localPort(fds[0]!);
      if (onDemand) {
        // The bound address as a worker would report it (node's names for the families).
        const bound = addrs.find((x) => x.family === (udpFd?.family ?? x.family))!;
        address = { port, address: bound.ip, family: bound.family === 6 ? 'IPv6' : 'IPv4' };
        held = { fds, udp: udpFd };
      } else {
        const r = (await startWorkers(fds, port))[0]!;
        address = { port: r.port, address: r.address, family: r.family };
      }
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  if (held === undefined) {
    markStarted();
    started = Promise.resolve();
    log.info({ port: address.port, workers: wanted }, 'listening');
  } else {
    const h = held;
    let startedAt = 0;
    const trigger = new Promise<void>((r) => (fire = r));
    unwatch = watchReadable(h.udp ? [...h.fds, h.udp.fd] : h.fds, () => fire?.());
    started = trigger.then(async () => {
      if (closing) return;
      fire = undefined;
      unwatch = undefined; // fired: the watch stopped itself
      held = undefined; // the workers own the sockets now
      startedAt = Date.now();
      try {
        await startWorkers(h.fds, address.port, h.udp);
      } catch (err) {
        if (closing) return;
        gaveUp = true;
        const reason = `data-plane workers could not start: ${(err as Error).message.split('\n')[0]}; stopping the server`;
        log.error({}, reason);
        opts.onGiveUp?.(reason);
        throw err;
      }
      if (closing) return;
      markStarted();
      log.info({ workers: wanted, startMs: Date.now() - startedAt }, 'data-plane workers started');
    });
    started.catch(() => undefined); // reported through onGiveUp; whenStarted() still rejects
    log.info({ port: address.port, workers: wanted, start: 'at the first connection' }, 'listening');
  }

  /** Start worker `old.index` again: a new SO_REUSEPORT socket on the port (or its own listener). */
  const respawn = async (old: Handle): Promise<void> => {
    if (closing || handles[old.index] !== old) return;
    let fd: number | undefined;
    try {
      if (addrs.length > 0) fd = listenReusePort(addrs, address.port);
    } catch (err) {
      // No socket, so no worker whose exit would retry: give up the same way.
      gaveUp = true;
      const reason = `cannot listen again for data-plane worker ${old.index}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; stopping the server`;
      log.error({ worker: old.index }, reason);
      opts.onGiveUp?.(reason);
      return;
    }
    old.stats.restarts++;
    try {
      await start(old.index, fd, address.port, old.stats);
      log.warn({ worker: old.index, restarts: old.stats.restarts }, 'data-plane worker restarted');
    } catch {
      // It stopped again before listening: its exit went through onExit (socket, budget, backoff).
    }
  };

  const broadcast = (m: ToWorker): void => {
    for (const h of handles) if (!h.exited) h.send(m);
  };
  const plane: WorkerPlane = {
    address,
    workers: wanted,
    get started() {
      return isStarted;
    },
    whenStarted: () => started,
    replayState: replay,
    replayFilters: filters,
    get keys() {
      return [...keys.values()];
    },
    setKeys(next) {
      void plane.applyKeyDelta(keyDelta(keys, next));
    },
    applyKeyDelta(delta) {
      if (delta.upsert.length === 0 && delta.remove.length === 0) return Promise.resolve();
      for (const id of delta.remove) keys.delete(id);
      for (const k of delta.upsert) keys.set(k.id, k);
      const n = ++seq;
      // A worker that has exited is not waited for (a restarted one starts with the current keys).
      const live = handles.filter((h) => !h.exited);
      const applied = live.map((h) => new Promise<void>((r) => h.pending.set(n, r)));
      broadcast({ t: 'delta', delta, seq: n });
      return Promise.all(applied).then(() => undefined);
    },
    closeKeyConnections(id) {
      broadcast({ t: 'closeKey', id });
      let n = 0;
      for (const h of handles) n += h.open.get(id) ?? 0;
      return n;
    },
    openConnections() {
      const out = new Map<string, number>();
      for (const h of handles) for (const [id, n] of h.open) out.set(id, (out.get(id) ?? 0) + n);
      return out;
    },
    devicesInUse: () => processDeviceCounts().inUse,
    workerStats: () => stats.map((s) => ({ ...s, closed: { ...s.closed } })),
    async loopStats() {
      const live = handles.filter((h) => !h.exited);
      const all = await Promise.all(
        live.map(
          (h) =>
            new Promise<LoopStats | undefined>((r) => {
              h.loopWaiters.push(r);
              h.send({ t: 'loopStats' });
            }),
        ),
      );
      return all.filter((x): x is LoopStats => x !== undefined);
    },
    ...(opts.testHooks === true ? { crashWorker: (i: number) => handles[i]?.send({ t: 'crash' }) } : {}),
    saveReplayState: () => replay.save(),
    async close() {
      replay.stop();
      await stopAll();
      refusals?.close(); // after the workers' last events
      await replay.save();
    },
  };
  return plane;
}
