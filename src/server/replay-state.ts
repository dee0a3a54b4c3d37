import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DEFAULT_REPLAY_CAPACITY } from '../config/defaults.js';
import { SALT_TTL_MS, SaltWindow } from '../protocol/shadowsocks/replay.js';
import { SaltFilter } from '../protocol/shadowsocks/replay.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { replaceFile, tempPrefix } from '../shared/data-file.js';
import { Periodic } from './periodic.js';
import { ReplayStateError } from './replay-state-error.js';

export { DEFAULT_REPLAY_CAPACITY, ReplayStateError };
export const DEFAULT_REPLAY_SAVE_MS = 60_000;
const REPLAY_STATE_MAGIC = 'LRS1';
/** Version 2 adds the 2022 edition's timed salt window after the two SIP004 filters. */
const REPLAY_STATE_MAGIC_2 = 'LRS2';
/** Version 3 is version 2's body followed by a SHA-256 of everything before it. */
const REPLAY_STATE_MAGIC_3 = 'LRS3';
const CHECKSUM_BYTES = 32;

/** Where the replay state lives between runs: a file (`replayStateFile`) or memory (tests). */
export interface ReplayStore {
  /** The bytes last written; undefined when nothing was saved yet. Throws on a read error. */
  read(): Promise<Buffer | undefined>;
  /** Replace the saved bytes (all or nothing). Throws on a write error. */
  write(data: Buffer): Promise<void>;
  /** The generation written before the last one (a file store keeps it), if any. */
  readPrevious?(): Promise<Buffer | undefined>;
  /** Move a damaged current generation out of the way (so the next write keeps the previous one). */
  setAside?(): Promise<string>;
  /** Throws when a later write cannot succeed (checked at load, so a bad path is refused at start). */
  checkWritable?(): Promise<void>;
  /** What to name in messages (the file). */
  readonly name?: string;
}

async function readOrUndefined(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The state in a file, readable only by the owner, replaced whole by `replaceFile`: a temporary
 * file is written and fsynced, the current file becomes `FILE.prev` (the previous generation), the
 * temporary file is renamed into place and the directory fsynced. A failed write removes its
 * temporary file; the first read removes what an interrupted run left (`FILE.*.tmp`, a long FILE
 * cut as `tempPrefix` cuts it).
 */
export function replayStateFile(file: string): ReplayStore {
  const prev = `${file}.prev`;
  let swept = false;
  const sweep = async (): Promise<void> => {
    if (swept) return;
    swept = true;
    const base = tempPrefix(file);
    const names = await readdir(dirname(file)).catch(() => [] as string[]);
    await Promise.all(
      names
        .filter((n) => n.startsWith(base) && n.endsWith('.tmp'))
        .map((n) => rm(join(dirname(file), n), { force: true })),
    );
  };
  return {
    name: file,
    async read() {
      await sweep();
      return readOrUndefined(file);
    },
    readPrevious: () => readOrUndefined(prev),
    async checkWritable() {
      try {
        await access(dirname(file), constants.W_OK | constants.X_OK);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
        const why = code === 'ENOENT' ? 'no such directory' : code === 'EACCES' ? 'permission denied' : code;
        throw new ReplayStateError(
          'REPLAY_STATE_UNWRITABLE',
          `replay state ${file} cannot be saved: ${dirname(file)}: ${why} (the filters would not survive a restart)`,
        );
      }
    },
    async setAside() {
      const to = `${file}.damaged`;
      await rename(file, to).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      return to;
    },
    async write(data) {
      // replaceFile's temporary file has a name no one can guess and is created new: in a shared
      // directory (--replay-state /tmp/…) another user's symlink is never followed.
      await replaceFile(file, data, {
        beforeRename: () =>
          rename(file, prev).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
          }),
      });
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
    // No salt outlives the window from now, whatever expiry a damaged (or hand-made) file gives.
    entries.push([
      data.toString('hex', o + 1, o + 1 + len),
      Math.min(data.readDoubleBE(o + 1 + len), nowMs + SALT_TTL_MS),
    ]);
    o += 1 + len + 8;
  }
  if (o !== data.length) throw new Error('trailing bytes after 2022 salt window');
  const w = new SaltWindow();
  w.import(entries, nowMs);
  return w;
}

interface ParsedState {
  client: SaltFilter;
  server: SaltFilter;
  window: SaltWindow | undefined;
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
  /** The client and server filters' buffers, for the addon's checks (native/shared_salts.h). */
  readonly sip004Bytes?: readonly [client: Uint8Array, server: Uint8Array];
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
 * File format (big-endian): LRS3 | u32 clientLen | client filter | u32 serverLen | server filter
 * | 2022 window (u32 count, then per salt: u8 length, salt, f64 expiry ms) | SHA-256 of all that
 * precedes. Read only: LRS2 (the same without the checksum) and LRS1 (LRS1 | u32 clientLen |
 * client filter | server filter).
 *
 * Start decision (load): the current generation, else the previous one (`FILE.prev`, one save
 * older) with a warning naming both; when neither loads but one exists the server has saved
 * state before, and load() throws ReplayStateError rather than start with an empty filter that
 * would answer every old capture. Nothing saved at all (neither file) is a first start.
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

  /**
   * The shared SIP004 filters' buffers (client, server) for the addon's checks; undefined for
   * in-process filters (replaced whole at a load, and JS objects the addon cannot read).
   */
  get sip004Bytes(): readonly [client: Uint8Array, server: Uint8Array] | undefined {
    return this.#shared?.sip004Bytes;
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

  /** The three filters from saved bytes; throws an Error saying what is wrong with them. */
  #parse(data: Buffer): ParsedState {
    const magic = data.length < 8 ? '' : data.toString('latin1', 0, 4);
    if (magic !== REPLAY_STATE_MAGIC && magic !== REPLAY_STATE_MAGIC_2 && magic !== REPLAY_STATE_MAGIC_3)
      throw new Error(data.length === 0 ? 'empty' : 'not a replay state file');
    if (magic === REPLAY_STATE_MAGIC_3) {
      if (data.length < 8 + CHECKSUM_BYTES) throw new Error('truncated');
      const body = data.subarray(0, data.length - CHECKSUM_BYTES);
      const sum = createHash('sha256').update(body).digest();
      if (!sum.equals(data.subarray(data.length - CHECKSUM_BYTES))) throw new Error('checksum mismatch');
      data = body;
    }
    const clientLen = data.readUInt32BE(4);
    if (8 + clientLen > data.length) throw new Error('truncated');
    if (magic === REPLAY_STATE_MAGIC) {
      return {
        client: SaltFilter.deserialize(data.subarray(8, 8 + clientLen), this.#capacity),
        server: SaltFilter.deserialize(data.subarray(8 + clientLen), this.#capacity),
        window: undefined,
      };
    }
    const o = 8 + clientLen;
    if (o + 4 > data.length) throw new Error('truncated');
    const serverLen = data.readUInt32BE(o);
    const serverEnd = o + 4 + serverLen;
    if (serverEnd > data.length) throw new Error('truncated');
    return {
      window: deserializeSaltWindow(data.subarray(serverEnd), this.#clock.now()),
      client: SaltFilter.deserialize(data.subarray(8, 8 + clientLen), this.#capacity),
      server: SaltFilter.deserialize(data.subarray(o + 4, serverEnd), this.#capacity),
    };
  }

  /** One generation: its filters, or that it is missing, or what is wrong with it. */
  async #generation(
    read: () => Promise<Buffer | undefined>,
  ): Promise<{ state: ParsedState } | { missing: true } | { problem: string }> {
    let data: Buffer | undefined;
    try {
      data = await read();
    } catch (err) {
      return { problem: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
    }
    if (data === undefined) return { missing: true };
    try {
      return { state: this.#parse(data) };
    } catch (err) {
      return { problem: (err as Error).message };
    }
  }

  /**
   * Replace the filters with the stored state (see the start decision above). Throws
   * ReplayStateError when state was saved before and no generation of it can be read.
   */
  async load(): Promise<void> {
    const store = this.#store;
    if (!store) return;
    const name = store.name ?? 'replay state';
    await store.checkWritable?.();
    const current = await this.#generation(() => store.read());
    let loaded = 'state' in current ? current.state : undefined;
    if (!loaded) {
      const previous = store.readPrevious
        ? await this.#generation(() => store.readPrevious!())
        : ({ missing: true } as const);
      const say = (g: typeof current): string =>
        'missing' in g ? 'missing' : `damaged (${'problem' in g ? g.problem : ''})`;
      if ('state' in previous) {
        loaded = previous.state;
        const aside =
          'problem' in current && store.setAside ? await store.setAside().catch(() => undefined) : undefined;
        this.#log.warn(
          { file: name, current: say(current), ...(aside ? { movedTo: aside } : {}) },
          `replay state ${name} is ${say(current)}: loaded the previous generation ${name}.prev (salts seen after it was saved are not remembered)`,
        );
      } else if ('missing' in current && 'missing' in previous) {
        return; // never saved: a first start
      } else {
        throw new ReplayStateError(
          'REPLAY_STATE_DAMAGED',
          `replay state ${name} is ${say(current)} and its previous generation ${name}.prev is ${say(previous)}; ` +
            'starting with an empty filter would answer replays of traffic recorded before now. ' +
            'To accept that, move both files aside and start again (docs/operations.md)',
        );
      }
    }
    this.#install(loaded.client, loaded.server, loaded.window);
    // From the previous generation: write a good current one at the next save.
    this.#savedAt = 'state' in current ? this.#stamp() : -1;
    this.#log.info(
      {
        clientSalts: this.clientSalts.size,
        serverSalts: this.serverSalts.size,
        salts2022: this.salts2022.size,
      },
      'replay state loaded',
    );
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
    head.write(REPLAY_STATE_MAGIC_3, 0, 'latin1');
    head.writeUInt32BE(client.length, 4);
    const serverLen = Buffer.alloc(4);
    serverLen.writeUInt32BE(server.length, 0);
    try {
      const body = Buffer.concat([head, client, serverLen, server, window]);
      await store.write(Buffer.concat([body, createHash('sha256').update(body).digest()]));
      this.#savedAt = stamp;
    } catch (err) {
      this.#log.warn(
        { file: store.name, code: (err as NodeJS.ErrnoException).code },
        'cannot save replay state',
      );
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
