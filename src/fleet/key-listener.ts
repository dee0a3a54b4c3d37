/**
 * The dedicated PostgreSQL connection that LISTENs for key changes (channel `ladder_keys`, sent by
 * the keys trigger of migration 0003_nodes in the same transaction as the change). It reconnects
 * with backoff (250 ms doubling to 5 s) when the connection breaks, and checks it every
 * PING_MS with a trivial query (a cut that sends no RST would otherwise go unnoticed for hours).
 * After every (re)connect `onConnect` runs, so changes made while it was deaf are caught up.
 */
import { createRequire } from 'node:module';
import type Pg from 'pg';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';

export const KEYS_CHANNEL = 'ladder_keys';
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5000;
const PING_MS = 15_000;
const PING_TIMEOUT_MS = 5000;

export interface KeyListenerOptions {
  url: string;
  log: Logger;
  clock?: Clock;
  /** A notification: the payload is the new keys version. */
  onChange: (version: number) => void;
  /** Connected and listening (first time and after every reconnect). */
  onConnect: () => void;
}

export class KeyListener {
  readonly #o: KeyListenerOptions;
  readonly #clock: Clock;
  #client: Pg.Client | undefined;
  #timer: Timer | undefined;
  #ping: Timer | undefined;
  #backoff = BACKOFF_MIN_MS;
  #closed = false;
  #connected = false;
  /** Connections made (1 after the first); for status and tests. */
  connects = 0;

  constructor(o: KeyListenerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Connect now; resolves after the first attempt (a failure schedules retries, never throws). */
  start(): Promise<void> {
    return this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const { Client } = createRequire(import.meta.url)('pg') as typeof Pg;
    const client = new Client({
      connectionString: this.#o.url,
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      application_name: 'ladder-listen',
    });
    this.#client = client;
    let failed = false;
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      this.#connected = false;
      client.end().catch(() => undefined);
      if (this.#closed) return;
      this.#o.log.warn(
        { err: err instanceof Error ? err.message : String(err), retryMs: this.#backoff },
        'key-change listener lost its database connection; polling covers until it is back',
      );
      this.#retry();
    };
    client.on('error', fail);
    client.on('end', () => fail(new Error('connection ended')));
    client.on('notification', (n) => {
      if (n.channel !== KEYS_CHANNEL) return;
      const v = Number(n.payload);
      this.#o.onChange(Number.isFinite(v) ? v : 0);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${KEYS_CHANNEL}`);
    } catch (err) {
      fail(err);
      return;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#connected = true;
    this.#backoff = BACKOFF_MIN_MS;
    this.connects++;
    this.#schedulePing(client);
    this.#o.onConnect();
  }

  #retry(): void {
    if (this.#closed || this.#timer) return;
    if (this.#ping) this.#clock.clearTimeout(this.#ping);
    const delay = this.#backoff;
    this.#backoff = Math.min(BACKOFF_MAX_MS, this.#backoff * 2);
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, delay);
    this.#timer.unref?.();
  }

  #schedulePing(client: Pg.Client): void {
    this.#ping = this.#clock.setTimeout(() => {
      if (this.#closed || this.#client !== client || !this.#connected) return;
      let done = false;
      // Judged after the I/O already received is handled (setImmediate runs after the poll phase):
      // a process whose event loop stalled past the timeout has the answer waiting, and must not
      // take its own stall for a dead connection (a reconnect and a catch-up read each time).
      const guard = this.#clock.setTimeout(() => {
        setImmediate(() => {
          if (!done) client.emit('error', new Error('no answer to the liveness check'));
        });
      }, PING_TIMEOUT_MS);
      client.query('SELECT 1').then(
        () => {
          done = true;
          this.#clock.clearTimeout(guard);
          this.#schedulePing(client);
        },
        (err: unknown) => {
          done = true;
          this.#clock.clearTimeout(guard);
          client.emit('error', err);
        },
      );
    }, PING_MS);
    this.#ping.unref?.();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#connected = false;
    if (this.#timer) this.#clock.clearTimeout(this.#timer);
    if (this.#ping) this.#clock.clearTimeout(this.#ping);
    await this.#client?.end().catch(() => undefined);
  }
}
