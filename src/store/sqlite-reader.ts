import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Read-only SQLite queries on a worker thread. better-sqlite3 is synchronous, so a large
 * aggregate (30 days of hourly buckets for thousands of keys) on the main thread would stall
 * every relayed connection in the process; here it runs on a second, read-only connection
 * (WAL lets it read while the main connection writes).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
parentPort.on('message', (m) => {
  try {
    parentPort.postMessage({ id: m.id, rows: db.prepare(m.sql).all(...m.params) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String((e && e.message) || e) });
  }
});
`;

interface Reply {
  id: number;
  rows?: unknown[];
  error?: string;
}

export class SqliteReader {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (rows: unknown[]) => void; reject: (e: Error) => void }>();
  #seq = 0;
  #failed: Error | undefined;

  constructor(path: string) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver } });
    this.#worker.unref();
    this.#worker.on('message', (m: Reply) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.rows ?? []);
    });
    const fail = (err: Error): void => {
      this.#failed = err;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', () => fail(new Error('SQLite reader thread exited')));
  }

  /** True once the worker died; callers then query on the main connection instead. */
  get failed(): boolean {
    return this.#failed !== undefined;
  }

  query(sql: string, params: readonly unknown[]): Promise<unknown[]> {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, sql, params });
    });
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}
