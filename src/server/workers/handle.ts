/**
 * One data-plane worker thread as the pool sees it (pool.ts): its Worker (this thread's own, or
 * the supervisor's), what it reported, its listening socket, and the key deltas it has yet to
 * apply; and the helpers that close a crashed worker's socket.
 */
import { readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../../shared/package-root.js';
import type { FromWorker, LoopStats, ToWorker, WorkerInit } from './messages.js';
import { closeFd } from './reuseport.js';
import type { Supervisor, WorkerLike } from './supervisor.js';
import { workerResourceLimits } from './young.js';

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

export interface WorkerStats {
  opened: number;
  authenticated: number;
  closed: Record<string, number>;
  /** Times this worker was restarted after stopping unexpectedly. */
  restarts: number;
  /** Linux: the thread id of its latest start (/proc/PID/task/TID). */
  tid?: number | undefined;
}

export class Handle {
  readonly worker: WorkerLike;
  open = new Map<string, number>();
  /** Connections accepted and not yet reported closed (lost if the worker crashes). */
  live = 0;
  /**
   * The uncaught error that ended the worker: its class, code and where it was thrown (logged),
   * and its message's first line (debug: it may name a destination).
   */
  error: { name: string; code?: string; at?: string; line: string } | undefined;
  /** The listening socket it was given, and that socket's inode (to close it only if still ours). */
  fd: number | undefined;
  fdInode: string | undefined;
  /** The bound UDP socket it was given to adopt (worker 0 on demand), and its inode. */
  udpFd: number | undefined;
  udpInode: string | undefined;
  /** It reported listening: from then on its exit is a crash (restarted), even during the start. */
  ready = false;
  /** Key deltas posted and not yet applied, by sequence number. */
  readonly pending = new Map<number, () => void>();
  /** loopStats requests waiting for their answer, in order. */
  readonly loopWaiters: ((s: LoopStats | undefined) => void)[] = [];
  closed: Promise<void>;
  /** The thread has exited: nothing it is sent is answered. */
  exited = false;
  #onClosed!: () => void;

  constructor(
    readonly index: number,
    readonly stats: WorkerStats,
    init: WorkerInit,
    onMessage: (h: Handle, m: FromWorker) => void,
    onExit: (h: Handle, code: number) => void,
    supervisor: Supervisor | undefined,
  ) {
    const resourceLimits = workerResourceLimits();
    this.worker = supervisor?.alive
      ? supervisor.spawn(workerSource(), init, resourceLimits)
      : new Worker(workerSource(), {
          eval: true,
          workerData: init,
          ...(resourceLimits ? { resourceLimits } : {}),
        });
    this.closed = new Promise((r) => (this.#onClosed = r));
    this.worker.on('message', (m: FromWorker) => {
      if (m.t === 'closed') this.#onClosed();
      if (m.t === 'loopStats') this.loopWaiters.shift()?.(m.stats);
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
    this.worker.on('error', (err: Error & { code?: unknown }) => {
      const at = throwSite(err.stack);
      this.error = {
        name: err.name,
        ...(typeof err.code === 'string' ? { code: err.code } : {}),
        ...(at !== undefined ? { at } : {}),
        line: String(err.message).split('\n')[0]!,
      };
    });
    this.worker.on('exit', (code) => {
      this.exited = true;
      this.#onClosed();
      for (const done of this.pending.values()) done();
      this.pending.clear();
      for (const w of this.loopWaiters.splice(0)) w(undefined);
      onExit(this, code);
    });
  }

  send(m: ToWorker): void {
    this.worker.postMessage(m);
  }
}

/** The inode of the socket at `fd` in this process ("socket:[N]"), or undefined. */
export function socketInode(fd: number): string | undefined {
  try {
    const target = readlinkSync(`/proc/self/fd/${fd}`);
    return target.startsWith('socket:') ? target : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Close a crashed worker's listening socket if its thread's teardown did not: only while the fd
 * still names the same socket (the number may have been reused since), so nothing else is closed.
 */
export function closeIfStillOpen(fd: number, inode: string | undefined): void {
  if (inode !== undefined && socketInode(fd) === inode) closeFd(fd);
}

/** The sockets handed to a worker, closed once its thread has exited if its teardown did not. */
export function closeHandedSockets(h: Handle): void {
  if (h.fd !== undefined) closeIfStillOpen(h.fd, h.fdInode);
  if (h.udpFd !== undefined) closeIfStillOpen(h.udpFd, h.udpInode);
}

/**
 * A worker's uncaught error as logged: its class, code and where it was thrown
 * (`TypeError ERR_X at fn (file.ts:12)`), never its message, which may name a destination or a
 * client's address; the stack's frames name only code.
 */
export function errorName(h: Handle): string | undefined {
  const e = h.error;
  return e && [e.name, e.code, e.at && `at ${e.at}`].filter(Boolean).join(' ');
}

/**
 * The first frame of `stack` outside Node's own code, as `fn (file:line)` with the file's base
 * name (a source file, or a bundle chunk), or undefined.
 */
export function throwSite(stack: string | undefined): string | undefined {
  for (const line of (stack ?? '').split('\n')) {
    const m = /^\s+at (?:(.+?) \()?(.+?):(\d+):\d+\)?$/.exec(line);
    if (!m || /^(node:|internal\/)/.test(m[2]!)) continue;
    const file = m[2]!.replace(/[?#].*$/, '').replace(/^.*[\\/]/, '');
    return m[1] ? `${m[1]} (${file}:${m[3]})` : `${file}:${m[3]}`;
  }
  return undefined;
}
