import type { AddressInfo } from 'node:net';
import type { DataPlane, ShadowsocksServer } from '../server/index.js';
import { processDeviceCounts } from '../server/index.js';
import type { KeyDelta, RuntimeKey, ServerControl } from '../shared/control.js';
import type { Logger } from '../shared/logger.js';

/** One port's data plane as the pool drives it: worker threads, or a server on this thread. */
export interface Plane extends ServerControl {
  readonly address: AddressInfo;
  applyKeyDelta(delta: KeyDelta): void | Promise<void>;
  close(): Promise<void>;
}

/** A data plane on this thread (the web front needs its server) as a Plane. */
export function inProcessPlane(dp: DataPlane): Plane {
  const s = dp.server;
  return {
    address: dp.address,
    setKeys: (k) => s.setKeys(k),
    applyKeyDelta: (d) => s.applyKeyDelta(d),
    closeKeyConnections: (id) => s.closeKeyConnections(id),
    openConnections: () => s.openConnections(),
    close: () => dp.close(),
  };
}

type PortKey = RuntimeKey & { port?: number };

/** What follows the pool's keys besides its servers. */
export type KeyWatcher = Pick<ServerControl, 'setKeys'> & { applyKeyDelta(delta: KeyDelta): void };

/**
 * Outline gives every key a port (usually the same one). The pool runs one data plane per port
 * that some usable key names, opening listeners as keys appear (PUT /access-keys/{id} with a port,
 * PUT /server/port-for-new-access-keys) and handing each its keys. It is the ServerControl the
 * enforcer drives; keys without a port go to the primary listener. A delta reaches only the
 * planes of the ports it touches, as a delta.
 */
export class PortPool implements ServerControl {
  readonly #planes = new Map<number, Plane>();
  readonly #opening = new Map<number, Promise<void>>();
  /** Ports that could not be opened, with why (EADDRINUSE…): not retried until restart. */
  readonly #failed = new Map<number, string>();
  readonly #keys = new Map<string, PortKey>();
  #closed = false;
  /** The web front's server: every key of every port (it has no listener of its own). */
  #web: ShadowsocksServer | undefined;
  /** Others that follow every usable key (the ShadowTLS port's per-key passwords). */
  readonly #watchers: KeyWatcher[] = [];

  constructor(
    readonly primary: Plane,
    private readonly open: (port: number) => Promise<Plane>,
    private readonly log: Logger,
  ) {
    this.#planes.set(primary.address.port, primary);
  }

  #portOf(k: PortKey): number {
    return k.port ?? this.primary.address.port;
  }

  #keysFor(port: number): RuntimeKey[] {
    return [...this.#keys.values()].filter((k) => this.#portOf(k) === port);
  }

  /** Serve every key over the web front through `server` from now on. */
  attachWebServer(server: ShadowsocksServer): void {
    this.#web = server;
    server.setKeys([...this.#keys.values()]);
  }

  /** Give `w` every usable key now and every change from now on. */
  watchKeys(w: KeyWatcher): void {
    this.#watchers.push(w);
    w.setKeys([...this.#keys.values()]);
  }

  get webServer(): ShadowsocksServer | undefined {
    return this.#web;
  }

  setKeys(keys: readonly RuntimeKey[]): void {
    const next = new Map<string, PortKey>(keys.map((k) => [k.id, k]));
    const remove = [...this.#keys.keys()].filter((id) => !next.has(id));
    void this.applyKeyDelta({ upsert: keys, remove });
  }

  /** Resolves once every plane the delta touches applied it (a new port: once it is opening). */
  async applyKeyDelta(delta: KeyDelta): Promise<void> {
    const per = new Map<number, { upsert: RuntimeKey[]; remove: string[] }>();
    const of = (port: number): { upsert: RuntimeKey[]; remove: string[] } => {
      let d = per.get(port);
      if (!d) per.set(port, (d = { upsert: [], remove: [] }));
      return d;
    };
    for (const id of delta.remove) {
      const old = this.#keys.get(id);
      if (!old) continue;
      this.#keys.delete(id);
      of(this.#portOf(old)).remove.push(id);
    }
    for (const k of delta.upsert as readonly PortKey[]) {
      const old = this.#keys.get(k.id);
      if (old && this.#portOf(old) !== this.#portOf(k)) of(this.#portOf(old)).remove.push(k.id);
      this.#keys.set(k.id, k);
      of(this.#portOf(k)).upsert.push(k);
    }
    const applied: (void | Promise<void>)[] = [];
    if (this.#web && per.size > 0) this.#web.applyKeyDelta(delta);
    if (per.size > 0) for (const w of this.#watchers) w.applyKeyDelta(delta);
    for (const [port, d] of per) {
      const plane = this.#planes.get(port);
      if (plane) applied.push(plane.applyKeyDelta(d));
      else if (d.upsert.length > 0) this.#openPort(port);
    }
    await Promise.all(applied);
  }

  #openPort(port: number): void {
    if (this.#opening.has(port) || this.#failed.has(port)) return;
    const opened = this.open(port).then(
      (plane) => {
        this.#opening.delete(port);
        if (this.#closed) return void plane.close();
        this.#planes.set(port, plane);
        plane.setKeys(this.#keysFor(port));
        this.log.info({ port }, 'listening on an additional key port');
      },
      (err: NodeJS.ErrnoException) => {
        this.#opening.delete(port);
        this.#failed.set(port, err.code ?? err.message); // the keys on it cannot connect
        this.log.warn({ port, err: err.code ?? err.message }, 'cannot listen on a key port');
      },
    );
    this.#opening.set(port, opened);
  }

  /**
   * Once the ports being opened have settled: every port a key is served on, and those that
   * could not be opened (for the banner: keys on a port other than --port, or on none).
   */
  async portsSettled(): Promise<{ listening: number[]; failed: [port: number, why: string][] }> {
    await Promise.all(this.#opening.values());
    return { listening: this.ports, failed: [...this.#failed] };
  }

  closeKeyConnections(id: string): number {
    let n = this.#web?.closeKeyConnections(id) ?? 0;
    for (const plane of this.#planes.values()) n += plane.closeKeyConnections(id);
    return n;
  }

  openConnections(): ReadonlyMap<string, number> {
    const out = new Map<string, number>();
    for (const source of [...this.#planes.values(), ...(this.#web ? [this.#web] : [])]) {
      for (const [id, n] of source.openConnections()) out.set(id, (out.get(id) ?? 0) + n);
    }
    return out;
  }

  /** Client addresses in use per device-limited key: one process-wide table (device-limits.ts). */
  devicesInUse(): ReadonlyMap<string, number> {
    return processDeviceCounts().inUse;
  }

  /** How many keys are served, over every port. */
  get keyCount(): number {
    return this.#keys.size;
  }

  get ports(): number[] {
    return [...this.#planes.keys()];
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...[...this.#planes.values()].map((p) => p.close()), this.#web?.close()]);
  }
}
