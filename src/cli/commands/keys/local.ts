/** `ladder keys` on the local store (SQLite file in the data dir, or --store). */
import { KeySecretError, planSecrets, rotatedSecret } from '../../../api/key-secrets.js';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  accessUrl,
  dynamicUrlVia,
  localApiEndpoint,
  subscriptionUrlVia,
  type ApiEndpoint,
} from '../../../api/index.js';
import { toAccessKeyJson, type WebEndpoint } from '../../../api/context.js';
import { DEFAULT_METHODS } from '../../../api/app.js';
import {
  checkNotLost,
  createAccessKeys,
  evaluateKeys,
  openStore,
  parseStoreLocation,
  ROLLING_WINDOW_MS,
  StoreError,
  type KeyPatch,
  type KyselyStore,
  type LimitField,
  type LimitPeriod,
  type ServerSettings,
} from '../../../store/index.js';
import { ProtocolError } from '../../../protocol/errors.js';
import { keyPrefixSettingFor } from '../../../protocol/shadowsocks/key-prefix.js';
import { UsageError } from '../../errors.js';
import { danglingWhy, dirErrorWhy, isDirectory } from '../../../shared/fs.js';
import { DEFAULT_DATA_PORT, guessHost } from '../../managed.js';
import { grpcKeyUrlFor, httpUpgradeKeyUrlFor, webKeyUrlFor } from '../../../protocol/sip002/plugin-opts.js';
import { notFound, type AddOptions, type KeysBackend, type KeyUrls, type KeyView } from './backend.js';

export class LocalKeys implements KeysBackend {
  private constructor(
    private readonly store: KyselyStore,
    private readonly dataDir: string,
  ) {}

  /**
   * Open the store at --data-dir/--store. A missing SQLite file is refused unless `init`: a key
   * added to a store no server reads would look valid and never work. Nothing is created
   * without --init, and never more than the data directory itself (its parent must exist).
   */
  static async open(dataDir: string, storeSpec: string | undefined, init = false): Promise<LocalKeys> {
    try {
      const loc = parseStoreLocation(storeSpec, resolve(dataDir));
      if (loc.kind === 'sqlite') prepareSqlite(loc.path, init);
      // Defaults only matter when the CLI creates the store before the server ever ran.
      const defaults = { hostname: guessHost(), port: DEFAULT_DATA_PORT };
      return new LocalKeys(await openStore(loc, { defaults }), resolve(dataDir));
    } catch (err) {
      if (err instanceof StoreError) throw new UsageError(err.message);
      throw err;
    }
  }

  /** The data directory's API (host, port, certificate pin): the endpoint of dynamic and subscription URLs. */
  #api(settings: ServerSettings): Promise<ApiEndpoint | undefined> {
    return localApiEndpoint(this.dataDir, settings, this.store.dialect);
  }

  /** The running front as the server saved it, when it is advertised alone (--advertise web). */
  async #webOnly(): Promise<WebEndpoint | undefined> {
    const { loadWebEndpoint } = await import('../../web.js');
    const ep = await loadWebEndpoint(this.dataDir);
    return ep?.only ? { ...ep, udp: false } : undefined;
  }

  async list(): Promise<KeyView[]> {
    const now = Date.now();
    const [statuses, settings, usage, web] = await Promise.all([
      evaluateKeys(this.store, now),
      this.store.getSettings(),
      this.store.usageSince(now - ROLLING_WINDOW_MS),
      this.#webOnly(),
    ]);
    const pin = await this.#api(settings);
    return statuses.map((s) => {
      const u = usage.get(s.key.id);
      return { ...toAccessKeyJson(s.key, settings, s, pin, web), trailing30DaysBytes: u ? u.up + u.down : 0 };
    });
  }

  async get(id: string): Promise<KeyView> {
    const k = (await this.list()).find((x) => x.id === id);
    if (!k) throw notFound(id);
    return k;
  }

  async add(o: AddOptions): Promise<KeyView[]> {
    const method = o.method ?? DEFAULT_METHODS[0]!;
    if (!DEFAULT_METHODS.includes(method))
      throw new UsageError(`--method must be one of ${DEFAULT_METHODS.join(', ')}, got "${method}"`);
    // 2022 AES methods: SIP023 multi-user keys ("iPSK:uPSK" with the server's identity PSK).
    const { makeSecret } = await planSecrets(this.store, { method });
    // The data directory's endpoint files first: a damaged one is refused before any key is made
    // (after, the keys were in the store but never printed, and a retry made them again).
    const [api, web] = await Promise.all([this.#api(await this.store.getSettings()), this.#webOnly()]);
    const { keys, settings } = await createAccessKeys(this.store, {
      method,
      makeSecret,
      count: o.count,
      name: o.name,
      dataLimitBytes: o.limitBytes,
      limitPeriod: o.period,
      expiresAt: o.expiresAt,
      prefix: o.prefix === undefined ? undefined : prefixSetting(method, o.prefix),
      deviceLimit: o.deviceLimit,
      speedLimit: o.speedLimit,
    });
    return keys.map((k) => toAccessKeyJson(k, settings, undefined, api, web));
  }

  async #update(id: string, patch: KeyPatch): Promise<void> {
    if (!(await this.store.updateKey(id, patch))) throw notFound(id);
  }

  async remove(id: string): Promise<void> {
    if (!(await this.store.deleteKey(id))) throw notFound(id);
  }
  rename(id: string, name: string): Promise<void> {
    return this.#update(id, { name });
  }
  limit(id: string, bytes: number | null, period?: LimitPeriod): Promise<void> {
    return this.#update(id, { dataLimitBytes: bytes, ...(period ? { limitPeriod: period } : {}) });
  }
  expire(id: string, at: number | null): Promise<void> {
    return this.#update(id, { expiresAt: at });
  }
  setEnabled(id: string, enabled: boolean): Promise<void> {
    return this.#update(id, { enabled });
  }
  keyLimit(id: string, field: LimitField, value: number | null): Promise<void> {
    return this.#update(id, { [field]: value });
  }
  async rotate(id: string, password?: string): Promise<void> {
    const key = await this.store.getKey(id);
    if (!key) throw notFound(id);
    // The running server's enforcer applies it at its next evaluation and closes the old
    // connections. Another key's secret is refused in the update's own transaction.
    try {
      const { secret, check } = await rotatedSecret(this.store, key, password);
      if (!(await this.store.updateKey(id, { secret }, check))) throw notFound(id);
    } catch (err) {
      if (err instanceof KeySecretError) throw new UsageError(`--password: ${err.message}`);
      throw err;
    }
  }
  async setPrefix(id: string, prefix: string): Promise<void> {
    const key = await this.store.getKey(id);
    if (!key) throw notFound(id);
    return this.#update(id, { prefix: prefixSetting(key.method, prefix) });
  }

  async urls(id: string): Promise<KeyUrls> {
    const key = await this.store.getKey(id);
    if (!key) throw notFound(id);
    const settings = await this.store.getSettings();
    const tag = key.name || `key ${key.id}`;
    const api = await this.#api(settings);
    const ssconf = dynamicUrlVia(key, settings, api, tag);
    const sub = subscriptionUrlVia(key, settings, api);
    // Loaded here: only `keys url` needs the web front's module.
    const { loadWebEndpoint } = await import('../../web.js');
    const ep = await loadWebEndpoint(this.dataDir);
    // --advertise web: the key's URL is the web front's; the raw host:port is named nowhere.
    const only = ep?.only === true;
    const { savedShadowTlsUrl } = await import('../../shadowtls.js');
    // --advertise web: no ShadowTLS URL either (it names the origin host).
    const stls = only
      ? undefined
      : await savedShadowTlsUrl(this.dataDir, key, settings.hostnameForAccessKeys, `${tag} (ShadowTLS)`);
    return {
      ss: only ? webKeyUrlFor(key, ep, tag) : accessUrl(key, settings, tag),
      name: key.name,
      ...(key.method.startsWith('2022-') ? {} : { prefix: key.prefix ?? 'auto' }),
      ...(ssconf ? { ssconf } : {}),
      ...(sub ? { sub } : {}),
      ...(ep && !only ? { web: webKeyUrlFor(key, ep, `${tag} (web)`) } : {}),
      ...(ep ? { httpupgrade: httpUpgradeKeyUrlFor(key, ep, `${tag} (HTTPUpgrade)`) } : {}),
      ...grpcUrlOf(key, ep, tag),
      ...(stls ? { shadowtls: stls } : {}),
    };
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

/** The stored form of --prefix for a key of `method`, or a one-line usage error. */
function prefixSetting(method: string, text: string): string {
  try {
    return keyPrefixSettingFor(method, text);
  } catch (err) {
    if (err instanceof ProtocolError) throw new UsageError(`--${err.message}`);
    throw err;
  }
}

/** The errno code of a failed fs call, or undefined. */
const errnoCode = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

/**
 * Check the SQLite file exists, or with `init` create its directory (one level, no recursion:
 * Node 20's recursive mkdir loops forever when the kernel answers ENOENT for an existing parent,
 * as /proc does, which made `--data-dir /proc/nope` hang).
 */
function prepareSqlite(path: string, init: boolean): void {
  try {
    if (!statSync(path).isFile()) throw new UsageError(`${path}: not a file (expected the SQLite key store)`);
    return;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = errnoCode(err);
    if (code === 'EACCES' || code === 'EPERM') throw new UsageError(`${path}: permission denied`);
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new UsageError(`${path}: cannot read (${code})`);
    // A link to nothing: say so (--init would create its target, or fail in SQLite's words).
    const dangling = danglingWhy(path);
    if (dangling !== undefined) throw new UsageError(`${path}: ${dangling} (expected the SQLite key store)`);
  }
  checkNotLost(path); // the store existed (its marker says so): say how to restore it, not --init
  if (!init) {
    throw new UsageError(
      `no key store at ${path}: point at the server's store with --data-dir DIR or --store sqlite:FILE, ` +
        `or at a running server with --api URL; to create a new store here, add --init`,
    );
  }
  const dir = dirname(path);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (errnoCode(err) === 'EEXIST' && isDirectory(dir)) return;
    throw new UsageError(`cannot create ${dir}: ${dirErrorWhy(dir, err)}`);
  }
}

/** `keys url`'s gRPC URL (for `ladder client`) where the saved front takes gRPC. */
function grpcUrlOf(
  key: { method: string; secret: string },
  ep: Parameters<typeof grpcKeyUrlFor>[1] | undefined,
  tag: string,
): { grpc?: string } {
  const url = ep && grpcKeyUrlFor(key, ep, `${tag} (gRPC)`);
  return url ? { grpc: url } : {};
}
