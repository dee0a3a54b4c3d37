import type { AddressInfo } from 'node:net';
import type { RuntimeKey } from '../shared/control.js';
import { ShadowsocksServer, type ServerOptions } from './server.js';

/** Where keys come from: a fixed list, or a function (the management plane's store). */
export type KeySource =
  readonly RuntimeKey[] | (() => readonly RuntimeKey[] | Promise<readonly RuntimeKey[]>);

export interface DataPlaneOptions extends Omit<ServerOptions, 'keys'> {
  keys: KeySource;
  port: number;
  /** Listen address; undefined = all interfaces (IPv6 and IPv4 where the host has both). */
  host?: string | undefined;
}

export interface DataPlane {
  readonly server: ShadowsocksServer;
  readonly address: AddressInfo;
  /** Reload keys from the key source (a no-op re-apply for a fixed list). */
  reloadKeys(): Promise<void>;
  close(): Promise<void>;
}

async function resolveKeys(src: KeySource): Promise<readonly RuntimeKey[]> {
  return typeof src === 'function' ? await src() : src;
}

/**
 * Build a ShadowsocksServer from a key source and start listening. The composition root (CLI,
 * management plane, lab, probing tests) uses this rather than wiring the server by hand.
 */
export async function startDataPlane(opts: DataPlaneOptions): Promise<DataPlane> {
  const { keys, port, host, ...serverOpts } = opts;
  const server = new ShadowsocksServer({ ...serverOpts, keys: await resolveKeys(keys) });
  const address = await server.listen({ port, host });
  return {
    server,
    address,
    reloadKeys: async () => server.setKeys(await resolveKeys(keys)),
    close: () => server.close(),
  };
}
