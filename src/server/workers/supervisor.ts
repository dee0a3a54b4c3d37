/**
 * Worker threads born at the data plane's priority after this thread lowered its own. On Linux a
 * thread's nice value is inherited at creation and an unprivileged thread cannot lower it again,
 * so once the management thread (this one) runs at +5, a worker it creates (a restart after a
 * crash) would run at +5 too. The supervisor is a tiny worker thread created while this thread
 * still has the workers' priority; it creates later workers as its own nested workers (they
 * inherit its nice value) and relays their messages, errors and exits (messages are batched
 * reports, a few a second, so the extra hop costs nothing per packet). It runs no network code.
 */
import { EventEmitter } from 'node:events';
import { Worker, type ResourceLimits } from 'node:worker_threads';

/** What the pool uses of a worker thread, whether this thread's own or the supervisor's. */
export type WorkerLike = EventEmitter & {
  postMessage(m: unknown): void;
  terminate(): Promise<unknown>;
};

type FromSupervisor =
  | { t: 'msg'; id: number; msg: unknown }
  | { t: 'error'; id: number; name: string; code: string | undefined; message: string; stack: string }
  | { t: 'exit'; id: number; code: number };

// CommonJS (an eval'd worker): create, relay, terminate on request.
const SOURCE = `
const { parentPort, Worker } = require('node:worker_threads');
const ws = new Map();
parentPort.on('message', (m) => {
  if (m.t === 'spawn') {
    const w = new Worker(m.src, { eval: true, workerData: m.init, ...(m.limits ? { resourceLimits: m.limits } : {}) });
    ws.set(m.id, w);
    w.on('message', (msg) => parentPort.postMessage({ t: 'msg', id: m.id, msg }));
    w.on('error', (e) => parentPort.postMessage({ t: 'error', id: m.id, name: String(e && e.name),
      code: e && typeof e.code === 'string' ? e.code : undefined, message: String(e && e.message),
      stack: String(e && e.stack) }));
    w.on('exit', (code) => { ws.delete(m.id); parentPort.postMessage({ t: 'exit', id: m.id, code }); });
  } else if (m.t === 'post') {
    const w = ws.get(m.id);
    if (w) w.postMessage(m.msg);
  } else if (m.t === 'terminate') {
    const w = ws.get(m.id);
    if (w) void w.terminate();
  }
});
`;

class RemoteWorker extends EventEmitter {
  exited = false;
  readonly #exit: Promise<void>;
  constructor(
    private readonly sup: Worker,
    readonly id: number,
  ) {
    super();
    this.#exit = new Promise((r) => this.once('exit', () => r()));
  }
  postMessage(m: unknown): void {
    if (!this.exited) this.sup.postMessage({ t: 'post', id: this.id, msg: m });
  }
  terminate(): Promise<void> {
    if (!this.exited) this.sup.postMessage({ t: 'terminate', id: this.id });
    return this.#exit;
  }
}

export class Supervisor {
  readonly #thread: Worker;
  readonly #workers = new Map<number, RemoteWorker>();
  #next = 0;
  #dead = false;

  /** Create the supervisor thread now (it gets this thread's current nice value). */
  constructor() {
    this.#thread = new Worker(SOURCE, { eval: true });
    this.#thread.on('message', (m: FromSupervisor) => {
      const w = this.#workers.get(m.id);
      if (!w) return;
      if (m.t === 'msg') w.emit('message', m.msg);
      else if (m.t === 'error')
        w.emit('error', Object.assign(new Error(m.message), { name: m.name, code: m.code, stack: m.stack }));
      else this.#exited(w, m.code);
    });
    // It runs no code of ours that could throw; if it stops anyway, so did its workers.
    this.#thread.on('error', () => undefined);
    this.#thread.on('exit', () => {
      this.#dead = true;
      for (const w of [...this.#workers.values()]) this.#exited(w, 1);
    });
  }

  /** False once the supervisor thread stopped (the caller then creates workers itself). */
  get alive(): boolean {
    return !this.#dead;
  }

  /** A worker of `src` (eval'd) with `workerData` and `limits`, created by the supervisor thread. */
  spawn(src: string, workerData: unknown, limits?: ResourceLimits): WorkerLike {
    const w = new RemoteWorker(this.#thread, this.#next++);
    this.#workers.set(w.id, w);
    this.#thread.postMessage({ t: 'spawn', id: w.id, src, init: workerData, limits });
    return w;
  }

  async close(): Promise<void> {
    await this.#thread.terminate();
  }

  #exited(w: RemoteWorker, code: number): void {
    if (w.exited) return;
    w.exited = true;
    this.#workers.delete(w.id);
    w.emit('exit', code);
  }
}
