import { readFile, rename, writeFile } from 'node:fs/promises';
import { DEFAULT_REPLAY_CAPACITY } from '../config/defaults.js';
import { SaltWindow } from '../protocol/shadowsocks/replay.js';
import { SaltFilter } from '../protocol/shadowsocks/replay.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { Periodic } from './periodic.js';

export { DEFAULT_REPLAY_CAPACITY };
export const DEFAULT_REPLAY_SAVE_MS = 60_000;
const REPLAY_STATE_MAGIC = 'LRS1';
/** Version 2 adds the 2022 edition's timed salt window after the two SIP004 filters. */
const REPLAY_STATE_MAGIC_2 = 'LRS2';

/** Where the replay state lives between runs: a file (`replayStateFile`) or memory (tests). */
export interface ReplayStore {
  /** The bytes last written; undefined when nothing was saved yet. Throws on a read error. */
  read(): Promise<Buffer | undefined>;
  /** Replace the saved bytes (all or nothing). Throws on a write error. */
  write(data: Buffer): Promise<void>;
}

/** The state in a file, written atomically (temp file + rename), readable only by the owner. */
export function replayStateFile(file: string): ReplayStore {
  return {
    async read() {
      try {
        return await readFile(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async write(data) {
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, data, { mode: 0o600 });
      await rename(tmp, file);
    },
  };
}

/** The state in memory: survives a close()/listen() of servers sharing the store (tests). */
export function memoryReplayStore(): ReplayStore & { data: Buffer | undefined } {
  const store = {
    data: undefined as Buffer | undefined,
    read: () => Promise.resolve(store.data),
    write: (data: Buffer) => {
      store.data = data;
      return Promise.resolve();
    },
  };
  return store;
}

function serializeSaltWindow(w: SaltWindow, nowMs: number): Buffer {
  const entries = w.export(nowMs);
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeUInt32BE(entries.length, 0);
  parts.push(head);
  for (const [hex, exp] of entries) {
    const salt = Buffer.from(hex, 'hex');
    const e = Buffer.allocUnsafe(1 + salt.length + 8);
    e[0] = salt.length;
    salt.copy(e, 1);
    e.writeDoubleBE(exp, 1 + salt.length);
    parts.push(e);
  }
  return Buffer.concat(parts);
}

function deserializeSaltWindow(data: Buffer, nowMs: number): SaltWindow {
  if (data.length < 4) throw new Error('truncated 2022 salt window');
  const count = data.readUInt32BE(0);
  const entries: Array<[string, number]> = [];
  let o = 4;
  for (let i = 0; i < count; i++) {
    const len = data[o];
    if (len === undefined || len === 0 || o + 1 + len + 8 > data.length)
      throw new Error('truncated 2022 salt window');
    entries.push([data.toString('hex', o + 1, o + 1 + len), data.readDoubleBE(o + 1 + len)]);
    o += 1 + len + 8;
  }
  if (o !== data.length) throw new Error('trailing bytes after 2022 salt window');
  const w = new SaltWindow();
  w.import(entries, nowMs);
  return w;
}

/**
 * Filters the caller supplies instead of new in-process ones: the multi-worker server's, over
 * SharedArrayBuffers (workers/shared-salts.ts), which every worker and the main thread share.
 */
export interface ReplayFilters {
  readonly clientSalts: SaltFilter;
  readonly serverSalts: SaltFilter;
  readonly salts2022: SaltWindow;
  /** Copy a loaded state in (shared filters are filled, never swapped for new objects). */
  replace(client: SaltFilter, server: SaltFilter, window: SaltWindow | undefined, nowMs: number): void;
  /** Changes made by any thread (a save is skipped only when nothing changed anywhere). */
  readonly changes: number;
}

export interface ReplayStateOptions {
  clock: Clock;
  log: Logger;
  /** Salts per SIP004 filter generation; memory holds at most twice this many. */
  capacity?: number;
  /** Without a store the state starts empty and is never saved. */
  store?: ReplayStore | undefined;
  /** How often the state is saved when it changed. */
  saveMs?: number;
  /** Use these filters (shared across worker threads) rather than new ones. */
  filters?: ReplayFilters | undefined;
}

/**
 * The replay filters of one port: the salts of authenticated SIP004 client connections, the
 * salts of this server's own response streams, and the 2022 request salts of the last 60 s.
 * With a store they outlive a restart (SIP004 has no timestamps, so a restart would otherwise
 * forget every salt): load() before serving, saved every `saveMs` while running and by save().
 *
 * File format (big-endian): LRS2 | u32 clientLen | client filter | u32 serverLen | server filter
 * | 2022 window (u32 count, then per salt: u8 length, salt, f64 expiry ms). LRS1, read only, is
 * LRS1 | u32 clientLen | client filter | server filter.
 */
export class ReplayState {
  /** Salts of authenticated client connections. */
  clientSalts: SaltFilter;
  /** Salts this server used for its own response streams. */
  serverSalts: SaltFilter;
  /** 2022 edition: request salts of the last 60 s (exact, timed; SIP022 §3.1.5). */
  salts2022 = new SaltWindow();
  #salts2022Changes = 0;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #capacity: number;
  readonly #store: ReplayStore | undefined;
  readonly #saver: Periodic;
  readonly #shared: ReplayFilters | undefined;
  #savedAt = -1;
  #saving: Promise<void> = Promise.resolve();

  constructor(opts: ReplayStateOptions) {
    this.#clock = opts.clock;
    this.#log = opts.log;
    this.#capacity = opts.capacity ?? DEFAULT_REPLAY_CAPACITY;
    this.#store = opts.store;
    this.#saver = new Periodic(opts.clock, opts.saveMs ?? DEFAULT_REPLAY_SAVE_MS, () => this.save());
    const shared = (this.#shared = opts.filters);
    this.clientSalts = shared?.clientSalts ?? new SaltFilter(this.#capacity);
    this.serverSalts = shared?.serverSalts ?? new SaltFilter(this.#capacity);
    if (shared) this.salts2022 = shared.salts2022;
  }

  /** Take a loaded state: new filters in-process, a copy into shared ones. */
  #install(client: SaltFilter, server: SaltFilter, window: SaltWindow | undefined): void {
    if (this.#shared) return this.#shared.replace(client, server, window, this.#clock.now());
    this.clientSalts = client;
    this.serverSalts = server;
    if (window) this.salts2022 = window;
  }

  /** A 2022 request salt was remembered (the state changed). */
  noteSalt2022(): void {
    this.#salts2022Changes++;
  }

  /** Replace the filters with the stored state, if any; a malformed one is logged and ignored. */
  async load(): Promise<void> {
    const store = this.#store;
    if (!store) return;
    let data: Buffer | undefined;
    try {
      data = await store.read();
    } catch (err) {
      this.#log.warn(
        { code: (err as NodeJS.ErrnoException).code },
        'cannot read replay state; starting empty',
      );
      return;
    }
    if (!data) return;
    try {
      const magic = data.length < 8 ? '' : data.toString('latin1', 0, 4);
      if (magic !== REPLAY_STATE_MAGIC && magic !== REPLAY_STATE_MAGIC_2) throw new Error('bad magic');
      const clientLen = data.readUInt32BE(4);
      if (8 + clientLen > data.length) throw new Error('truncated');
      let window: SaltWindow | undefined;
      if (magic === REPLAY_STATE_MAGIC_2) {
        const o = 8 + clientLen;
        if (o + 4 > data.length) throw new Error('truncated');
        const serverLen = data.readUInt32BE(o);
        const serverEnd = o + 4 + serverLen;
        if (serverEnd > data.length) throw new Error('truncated');
        window = deserializeSaltWindow(data.subarray(serverEnd), this.#clock.now());
        this.#install(
          SaltFilter.deserialize(data.subarray(8, 8 + clientLen), this.#capacity),
          SaltFilter.deserialize(data.subarray(o + 4, serverEnd), this.#capacity),
          window,
        );
      } else {
        this.#install(
          SaltFilter.deserialize(data.subarray(8, 8 + clientLen), this.#capacity),
          SaltFilter.deserialize(data.subarray(8 + clientLen), this.#capacity),
          undefined,
        );
      }
      this.#savedAt = this.#stamp();
      this.#log.info(
        {
          clientSalts: this.clientSalts.size,
          serverSalts: this.serverSalts.size,
          salts2022: this.salts2022.size,
        },
        'replay state loaded',
      );
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'replay state file is malformed; starting empty');
    }
  }

  /** Write the state to the store now, if it changed since the last load or save. */
  save(): Promise<void> {
    // One save at a time: a periodic save and the one at close must not share the temp file.
    this.#saving = this.#saving.then(() => this.#save());
    return this.#saving;
  }

  async #save(): Promise<void> {
    const store = this.#store;
    if (!store) return;
    const stamp = this.#stamp();
    if (stamp === this.#savedAt) return;
    const client = this.clientSalts.serialize();
    const server = this.serverSalts.serialize();
    const window = serializeSaltWindow(this.salts2022, this.#clock.now());
    const head = Buffer.alloc(8);
    head.write(REPLAY_STATE_MAGIC_2, 0, 'latin1');
    head.writeUInt32BE(client.length, 4);
    const serverLen = Buffer.alloc(4);
    serverLen.writeUInt32BE(server.length, 0);
    try {
      await store.write(Buffer.concat([head, client, serverLen, server, window]));
      this.#savedAt = stamp;
    } catch (err) {
      this.#log.warn({ code: (err as NodeJS.ErrnoException).code }, 'cannot save replay state');
    }
  }

  #stamp(): number {
    if (this.#shared) return this.#shared.changes;
    return this.clientSalts.changes + this.serverSalts.changes + this.#salts2022Changes;
  }

  /** Save every `saveMs` until stop() (nothing to do without a store). */
  start(): void {
    if (this.#store) this.#saver.start();
  }

  stop(): void {
    this.#saver.stop();
  }
}
