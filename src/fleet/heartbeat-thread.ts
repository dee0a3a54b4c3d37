/**
 * A fleet node's heartbeat, written from a small thread of its own with its own connection: the
 * management thread runs at a lower priority (nice +5) and carries the API, key evaluations and
 * usage writes, so under heavy load its event loop can stall for seconds, and a heartbeat written
 * there could miss the "down" bound while the node relays fine. This thread does nothing else (one
 * UPDATE every HEARTBEAT_MS), so its beats are late only if the database is (docs/fleet.md).
 * The row's identity checks (a row removed or taken over) stay with the main thread: a beat that
 * updated no row is reported, and the main thread registers again.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// CommonJS, evaluated: no build step and no loader needed for the thread (tsx, or the built package).
const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { Client } = require(workerData.pg);
const { url, name, instance, intervalMs } = workerData;
const SQL = 'update nodes set heartbeat_at = (extract(epoch from clock_timestamp()) * 1000)::bigint, keys_version = $3 where name = $1 and instance = $2';
let applied = workerData.applied;
let client;
let timer;
let closed = false;
const drop = () => {
  const c = client;
  client = undefined;
  if (c) c.end().catch(() => undefined);
};
parentPort.on('message', (m) => {
  if (m.t === 'applied') applied = m.v;
  else if (m.t === 'close') {
    closed = true;
    clearTimeout(timer);
    drop();
    parentPort.close();
  }
});
async function beat() {
  try {
    if (!client) {
      client = new Client({ connectionString: url, connectionTimeoutMillis: 5000, query_timeout: 5000, keepAlive: true, application_name: 'ladder-heartbeat' });
      client.on('error', drop);
      await client.connect();
    }
    const r = await client.query(SQL, [name, instance, applied]);
    parentPort.postMessage({ t: 'beat', ok: r.rowCount > 0 });
  } catch (e) {
    drop();
    parentPort.postMessage({ t: 'beat', ok: false, error: String((e && e.message) || e) });
  }
  if (!closed) timer = setTimeout(beat, intervalMs);
}
beat();
`;

export interface HeartbeatThreadOptions {
  url: string;
  name: string;
  instance: string;
  intervalMs: number;
  applied: number;
  /** After every beat: whether it updated this node's row, or why it failed. */
  onBeat: (ok: boolean, error: string | undefined) => void;
}

export class HeartbeatThread {
  readonly #worker: Worker;
  #exited: Promise<void>;

  constructor(o: HeartbeatThreadOptions) {
    const pg = createRequire(import.meta.url).resolve('pg');
    const { url, name, instance, intervalMs, applied } = o;
    this.#worker = new Worker(SOURCE, {
      eval: true,
      workerData: { pg, url, name, instance, intervalMs, applied },
    });
    this.#worker.unref();
    this.#worker.on('message', (m: { t: string; ok: boolean; error?: string }) => {
      if (m.t === 'beat') o.onBeat(m.ok, m.error);
    });
    this.#exited = new Promise((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.on('error', (err) => o.onBeat(false, `heartbeat thread: ${err.message}`));
  }

  /** The keys version the next beat reports. */
  applied(v: number): void {
    this.#worker.postMessage({ t: 'applied', v });
  }

  /** Stop beating (the connection closes); resolves once the thread is gone (at most 2 s). */
  async close(): Promise<void> {
    this.#worker.postMessage({ t: 'close' });
    const t = setTimeout(() => void this.#worker.terminate(), 2000);
    await this.#exited;
    clearTimeout(t);
  }
}
