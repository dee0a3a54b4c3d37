/**
 * What the picker remembers about endpoints, per network, kept in a small JSON file so a restart
 * (or a return to the same café) starts from what got through there last time.
 *
 * Network identity: a hash of the non-loopback interface networks (address masked by netmask)
 * and, on Linux, the default gateway (/proc/net/route) — what changes when the laptop moves
 * from home to office Wi-Fi. Cheap (no packets), recomputed at most every 10 s. Neither the
 * addresses nor the endpoints are stored: networks and endpoint keys are SHA-256 truncated, so
 * the file says what worked without saying where. Bounded: 16 networks × 64 endpoints, oldest
 * dropped. Written whole or not at all (`replaceFileSync`, mode 0600), at most once a second.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { Clock, Timer } from '../shared/clock.js';
import { replaceFileSync } from '../shared/data-file.js';
import type { EndpointMemory, EndpointRecord } from './routing/endpoints.js';

export const MEMORY_FILE = 'client-memory.json';
const MAX_NETWORKS = 16;
const MAX_ENDPOINTS = 64;
const NETWORK_RECHECK_MS = 10_000;

const h = (s: string, n = 16): string => createHash('sha256').update(s).digest('hex').slice(0, n);

function maskAddress(address: string, netmask: string, family: string): string {
  if (family === 'IPv4') {
    const a = address.split('.').map(Number);
    const m = netmask.split('.').map(Number);
    return a.map((x, i) => x & (m[i] ?? 0)).join('.');
  }
  // IPv6: keep the prefix groups the mask covers (coarse, enough to tell networks apart).
  const bits = netmask.split(':').reduce(
    (n, g) =>
      n +
      (parseInt(g || '0', 16)
        .toString(2)
        .match(/1/g)?.length ?? 0),
    0,
  );
  return `${address
    .split(':')
    .slice(0, Math.ceil(bits / 16))
    .join(':')}/${bits}`;
}

function defaultGateway(): string {
  try {
    const lines = readFileSync('/proc/net/route', 'utf8').split('\n').slice(1, 64);
    for (const l of lines) {
      const f = l.trim().split(/\s+/);
      if (f[1] === '00000000' && f[2]) return `${f[0]}:${f[2]}`;
    }
  } catch {
    // not Linux, or no procfs: interfaces alone
  }
  return '';
}

/** A short id for the network this machine is on now (see the top of this file). */
export function currentNetworkId(): string {
  const parts: string[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.internal || a.address.startsWith('fe80')) continue;
      parts.push(`${name}=${maskAddress(a.address, a.netmask, a.family)}`);
    }
  }
  parts.sort();
  parts.push(`gw=${defaultGateway()}`);
  return h(parts.join(','), 12);
}

interface FileShape {
  version: 1;
  networks: Record<string, { seenAt: number; endpoints: Record<string, EndpointRecord> }>;
}

export interface NetworkMemoryOptions {
  clock: Clock;
  /** Directory of the memory file; undefined keeps memory in this process only. */
  dir?: string | undefined;
  /** The network identity (default currentNetworkId; tests inject). */
  networkId?: () => string;
  onSaveError?: (err: Error) => void;
}

/** EndpointMemory per network, persisted (see the top of this file). */
export class NetworkMemory implements EndpointMemory {
  readonly #o: NetworkMemoryOptions;
  readonly #file: string | undefined;
  #data: FileShape = { version: 1, networks: {} };
  #net = '';
  #netCheckedAt = -Infinity;
  #saveTimer: Timer | undefined;

  constructor(opts: NetworkMemoryOptions) {
    this.#o = opts;
    this.#file = opts.dir ? join(opts.dir, MEMORY_FILE) : undefined;
    if (this.#file) {
      try {
        const d = JSON.parse(readFileSync(this.#file, 'utf8')) as FileShape;
        if (d && d.version === 1 && typeof d.networks === 'object' && d.networks !== null) this.#data = d;
      } catch {
        // none yet, or unreadable: start empty (it is only a hint)
      }
    }
  }

  /** The current network's id (rechecked at most every 10 s). */
  get network(): string {
    const now = this.#o.clock.now();
    if (now - this.#netCheckedAt >= NETWORK_RECHECK_MS) {
      this.#netCheckedAt = now;
      this.#net = (this.#o.networkId ?? currentNetworkId)();
    }
    return this.#net;
  }

  #table(create: boolean): Record<string, EndpointRecord> | undefined {
    const id = this.network;
    let n = this.#data.networks[id];
    if (!n && create) {
      n = this.#data.networks[id] = { seenAt: this.#o.clock.now(), endpoints: {} };
      const ids = Object.keys(this.#data.networks);
      if (ids.length > MAX_NETWORKS) {
        ids.sort((a, b) => this.#data.networks[a]!.seenAt - this.#data.networks[b]!.seenAt);
        for (const old of ids.slice(0, ids.length - MAX_NETWORKS)) delete this.#data.networks[old];
      }
    }
    return n?.endpoints;
  }

  get(key: string): EndpointRecord | undefined {
    return this.#table(false)?.[h(key)];
  }

  set(key: string, r: EndpointRecord): void {
    const t = this.#table(true)!;
    t[h(key)] = r;
    this.#data.networks[this.network]!.seenAt = this.#o.clock.now();
    const ids = Object.keys(t);
    if (ids.length > MAX_ENDPOINTS) {
      const at = (k: string): number => Math.max(t[k]!.lastOkAt ?? 0, t[k]!.lastFailAt ?? 0);
      ids.sort((a, b) => at(a) - at(b));
      for (const old of ids.slice(0, ids.length - MAX_ENDPOINTS)) delete t[old];
    }
    this.#scheduleSave();
  }

  #scheduleSave(): void {
    if (!this.#file || this.#saveTimer) return;
    this.#saveTimer = this.#o.clock.setTimeout(() => {
      this.#saveTimer = undefined;
      this.save();
    }, 1000);
    this.#saveTimer.unref?.();
  }

  /** Write now (also on close). */
  save(): void {
    if (!this.#file) return;
    if (this.#saveTimer) this.#o.clock.clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    try {
      writeAtomic(this.#file, JSON.stringify(this.#data));
    } catch (err) {
      this.#o.onSaveError?.(err as Error);
    }
  }
}

/** Write `text` to `file` whole or not at all (`replaceFileSync`, 0600; the directory is made). */
export function writeAtomic(file: string, text: string): void {
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  replaceFileSync(file, text);
}
