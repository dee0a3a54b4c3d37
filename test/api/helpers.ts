import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { RuntimeKey, ServerControl } from '../../src/shared/control.js';
import type { Clock } from '../../src/shared/clock.js';
import { buildApi, type ApiOptions } from '../../src/api/index.js';
import { openStore, parseStoreLocation, type KyselyStore } from '../../src/store/index.js';

/** A ServerControl that records what the management plane asked of the data plane. */
export class RecordingControl implements ServerControl {
  keys: RuntimeKey[] = [];
  closed: string[] = [];
  open = new Map<string, number>();
  /** Per device-limited key id: the addresses in use the data plane would report. */
  devices = new Map<string, number>();
  setKeys(keys: readonly RuntimeKey[]): void {
    this.keys = [...keys];
  }
  closeKeyConnections(id: string): number {
    this.closed.push(id);
    return this.open.get(id) ?? 0;
  }
  openConnections(): ReadonlyMap<string, number> {
    return this.open;
  }
  devicesInUse(): ReadonlyMap<string, number> {
    return this.devices;
  }
  ids(): string[] {
    return this.keys.map((k) => k.id).sort();
  }
}

export function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-api-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Harness {
  dir: string;
  store: KyselyStore;
  app: FastifyInstance;
  control: RecordingControl;
  prefix: string;
  /** inject under the secret prefix */
  call(
    method: NonNullable<InjectOptions['method']>,
    path: string,
    body?: unknown,
  ): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** The API in-process on the store in `dir` (SQLite), or on `opts.store` (a postgres:// URL). */
export async function harness(dir: string, opts: { clock?: Clock; store?: string } = {}): Promise<Harness> {
  const store = await openStore(parseStoreLocation(opts.store, dir), {
    ...(opts.clock ? { clock: opts.clock } : {}),
    defaults: { hostname: 'example.org', port: 4444 },
  });
  const control = new RecordingControl();
  const app = await buildApi({
    store,
    control,
    ...(opts.clock ? { clock: opts.clock } : {}),
    enforceIntervalMs: 500,
  });
  await app.ready();
  const prefix = `/${(await store.getSettings()).apiPrefix}`;
  return {
    dir,
    store,
    app,
    control,
    prefix,
    call: (method, path, body) =>
      app.inject({
        method,
        url: prefix + path,
        ...(body === undefined
          ? {}
          : {
              payload: typeof body === 'string' ? body : JSON.stringify(body),
              headers: { 'content-type': 'application/json' },
            }),
      }),
    close: async () => {
      await app.close();
      await store.close();
    },
  };
}

/**
 * A store with one key ("Alice", raw port 4444 on example.org) behind an API built with `opts`
 * (a web front, a ShadowTLS port), and a getter of that key's subscription in a format.
 */
export async function keySubscription(
  t: { after: (fn: () => Promise<void> | void) => void },
  opts: Pick<ApiOptions, 'webEndpoint' | 'shadowTls'>,
): Promise<{
  get: (format: string) => Promise<string>;
  dir: string;
  key: { method: string; secret: string };
}> {
  const dir = tempDir(t);
  const store = await openStore(parseStoreLocation(undefined, dir), {
    defaults: { hostname: 'example.org', port: 4444 },
  });
  await store.updateSettings({ apiPort: 8443 });
  const app = await buildApi({ store, control: new RecordingControl(), ...opts });
  await app.ready();
  t.after(async () => {
    await app.close();
    await store.close();
  });
  const prefix = `/${(await store.getSettings()).apiPrefix}`;
  const r = await app.inject({ method: 'POST', url: `${prefix}/access-keys`, payload: { name: 'Alice' } });
  const made = JSON.parse(r.body) as Record<string, unknown>;
  const base = new URL(String(made.subscriptionUrl)).pathname;
  return {
    dir,
    key: { method: String(made.method), secret: String(made.password) },
    get: async (format) => {
      const res = await app.inject({ url: `${base}/${format}` });
      if (res.statusCode !== 200) throw new Error(`${format}: ${res.statusCode} ${res.body}`);
      return res.body;
    },
  };
}
