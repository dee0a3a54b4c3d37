/**
 * The multi-worker data plane, main-thread side: N worker threads (data-plane.worker.ts), each with its own
 * SO_REUSEPORT listening socket on the same port, sharing the replay filters (SharedArrayBuffers,
 * shared-salts.ts). The main thread keeps what is not per-connection: the replay state file (load
 * before the workers start, save while running and at close), the key set (each change posted to
 * every worker as a delta), the usage sink (workers post batched byte counts: each byte is counted
 * by the one worker that carried it) and the hooks (events posted in batches, so metrics are
 * aggregated in one registry). UDP runs in worker 0 only.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { nativeAvailable } from '../../protocol/shadowsocks/native.js';
import { systemClock } from '../../shared/clock.js';
import type { RuntimeKey, ServerControl, UsageSink } from '../../shared/control.js';
import type { Logger } from '../../shared/logger.js';
import { packageRoot } from '../../shared/package-root.js';
import type { ServerHooks } from '../events.js';
import { keyDelta, type KeyDelta } from '../keys.js';
import {
  DEFAULT_REPLAY_CAPACITY,
  ReplayState,
  replayStateFile,
  type ReplayFilters,
  type ReplayStore,
} from '../replay-state.js';
import type { UdpRelayOptions } from '../udp-relay.js';
import type { FromWorker, ToWorker, WorkerInit } from './messages.js';
import { bindAddress, closeFd, listenReusePort, localPort, reusePortAvailable } from './reuseport.js';
import { createSharedReplay, sharedReplayFilters } from './shared-salts.js';

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
  replayStateFile?: string;
  replayStore?: ReplayStore;
  replaySaveMs?: number;
  usageFlushMs?: number;
  udp?: boolean | UdpRelayOptions;
  refusalLog?: { repeatMs?: number; unauthenticatedMs?: number };
  /** How often workers post events and open-connection counts (default 250 ms). */
  reportMs?: number;
  /** Tests only (the negative control): false gives each worker replay filters of its own. */
  shareReplay?: boolean;
  /** Tests only: called with each batch of events and the worker that posted it. */
  onWorkerEvents?: (worker: number, m: Extract<FromWorker, { t: 'events' }>) => void;
}

export interface WorkerStats {
  opened: number;
  authenticated: number;
  closed: Record<string, number>;
}

/** The data plane as the management plane drives it (the same seam as one ShadowsocksServer). */
export interface WorkerPlane extends ServerControl {
  readonly address: AddressInfo;
  /** Workers actually running (1 when SO_REUSEPORT sockets cannot be made here). */
  readonly workers: number;
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
  /**
   * Change only the keys a delta names, in every worker. Resolves once every worker applied it,
   * so a key the API has just created works in whichever worker its first connection reaches.
   */
  applyKeyDelta(delta: KeyDelta): Promise<void>;
  saveReplayState(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The worker's entry: from a build, dist/server/workers/data-plane.worker.js (scripts/build.mjs
 * makes every *.worker.ts an entry point of its own, at its path under src/; this module itself
 * sits in a chunk at another depth, so the path is taken from the package root); from src/,
 * data-plane.worker.ts through tsx. An eval'd worker does not get the parent's loader hooks, so tsx is registered in it, through
 * its CommonJS hook (about a third of the start-up time of its ESM hook, which starts a loader
 * thread per worker; the data plane's modules have no top-level await).
 */
function workerSource(): string {
  if (!import.meta.url.endsWith('.ts')) {
    const root = packageRoot()?.dir;
    if (root === undefined) throw new Error('cannot find the package root for the data-plane worker');
    const entry = pathToFileURL(join(root, 'dist', 'server', 'workers', 'data-plane.worker.js'));
    return `import(${JSON.stringify(entry.href)});`;
  }
  const req = createRequire(import.meta.url);
  const tsx = req.resolve('tsx/cjs/api');
  const entry = fileURLToPath(new URL('./data-plane.worker.ts', import.meta.url));
  return `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(entry)});`;
}

class Handle {
  readonly worker: Worker;
  open = new Map<string, number>();
  readonly stats: WorkerStats = { opened: 0, authenticated: 0, closed: {} };
  error: string | undefined;
  /** Key deltas posted and not yet applied, by sequence number. */
  readonly pending = new Map<number, () => void>();
  closed: Promise<void>;
  #onClosed!: () => void;

  constructor(
    readonly index: number,
    init: WorkerInit,
    onMessage: (h: Handle, m: FromWorker) => void,
    onExit: (h: Handle, code: number) => void,
  ) {
    this.worker = new Worker(workerSource(), { eval: true, workerData: init });
    this.closed = new Promise((r) => (this.#onClosed = r));
    this.worker.on('message', (m: FromWorker) => {
      if (m.t === 'closed') this.#onClosed();
      if (m.t === 'applied') {
        for (const [seq, done] of this.pending) {
          if (seq > m.seq) break;
          this.pending.delete(seq);
          done();
        }
      }
      onMessage(this, m);
    });
    // An uncaught error ends in 'exit', reported there with the error's first line.
    this.worker.on('error', (err) => (this.error = err.message.split('\n')[0]));
    this.worker.on('exit', (code) => {
      this.#onClosed();
      for (const done of this.pending.values()) done();
      this.pending.clear();
      onExit(this, code);
    });
  }

  send(m: ToWorker): void {
    this.worker.postMessage(m);
  }
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
  const onMessage = (h: Handle, m: FromWorker): void => {
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
      h.stats.opened += m.opened;
      h.stats.authenticated += m.authenticated.length;
      for (const e of m.closed) h.stats.closed[e.status] = (h.stats.closed[e.status] ?? 0) + 1;
      for (let i = 0; i < m.opened; i++) hooks.onConnectionOpened?.();
      for (const e of m.authenticated) hooks.onAuthenticated?.(e);
      for (const e of m.closed) hooks.onConnectionClosed?.(e);
      opts.onWorkerEvents?.(h.index, m);
    }
  };
  const onExit = (h: Handle, code: number): void => {
    if (!closing) log.error({ worker: h.index, code, err: h.error }, 'data-plane worker stopped');
  };
  const base = {
    host: opts.host,
    keys: opts.keys,
    replay: opts.shareReplay === false ? undefined : bufs,
    replayCapacity: opts.replayCapacity,
    idleMs: opts.timeouts?.idleMs,
    connectMs: opts.timeouts?.connectMs,
    allowPrivateDestinations: opts.allowPrivateDestinations ?? false,
    usageFlushMs: opts.usageFlushMs,
    refusalLog: opts.refusalLog,
    reportMs: opts.reportMs ?? 250,
    logLevel: opts.logLevel ?? log.level,
    native: nativeAvailable(),
  };
  const start = (
    index: number,
    fd: number | undefined,
    port: number,
  ): Promise<Extract<FromWorker, { t: 'ready' }>> =>
    new Promise((resolve, reject) => {
      const init: WorkerInit = { ...base, index, fd, port, udp: index === 0 ? (opts.udp ?? false) : false };
      const h = new Handle(
        index,
        init,
        (hh, m) => {
          if (m.t === 'ready') resolve(m);
          else if (m.t === 'failed') reject(Object.assign(new Error(m.message), { code: m.code }));
          else onMessage(hh, m);
        },
        (hh, code) => {
          reject(
            new Error(`data-plane worker ${index} exited (${code}) before listening: ${hh.error ?? ''}`),
          );
          onExit(hh, code);
        },
      );
      handles.push(h);
    });

  const stopAll = async (): Promise<void> => {
    closing = true;
    for (const h of handles) h.send({ t: 'close' });
    await Promise.all(handles.map((h) => h.closed));
    await Promise.all(handles.map((h) => h.worker.terminate()));
  };

  let address: AddressInfo;
  try {
    if (wanted === 1) {
      const r = await start(0, undefined, opts.port);
      address = { port: r.port, address: r.address, family: r.family };
    } else {
      // Every socket first (the first fixes the port when port 0 asked for any), then every
      // worker at once.
      const addrs = await bindAddress(opts.host);
      const fds: number[] = [];
      try {
        fds.push(listenReusePort(addrs, opts.port));
        const port = localPort(fds[0]!);
        while (fds.length < wanted) fds.push(listenReusePort(addrs, port));
      } catch (err) {
        for (const fd of fds) closeFd(fd);
        throw err;
      }
      const port = localPort(fds[0]!);
      const ready = await Promise.all(
        fds.map((fd, i) =>
          start(i, fd, port).catch((err: unknown) => {
            closeFd(fd);
            throw err;
          }),
        ),
      );
      const r = ready[0]!;
      address = { port: r.port, address: r.address, family: r.family };
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  replay.start();
  log.info({ port: address.port, workers: wanted }, 'listening');

  const broadcast = (m: ToWorker): void => {
    for (const h of handles) h.send(m);
  };
  const plane: WorkerPlane = {
    address,
    workers: wanted,
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
      const applied = handles.map((h) => new Promise<void>((r) => h.pending.set(n, r)));
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
    workerStats: () => handles.map((h) => ({ ...h.stats, closed: { ...h.stats.closed } })),
    saveReplayState: () => replay.save(),
    async close() {
      replay.stop();
      await stopAll();
      await replay.save();
    },
  };
  return plane;
}
