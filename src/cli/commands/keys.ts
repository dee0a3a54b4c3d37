import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Command } from 'commander';
import QRCode from 'qrcode';
import { accessUrl, dynamicAccessUrl, type AccessKeyJson } from '../../api/index.js';
import { toAccessKeyJson } from '../../api/context.js';
import { DEFAULT_METHODS } from '../../api/app.js';
import { planSecrets } from '../../api/key-secrets.js';
import {
  createAccessKeys,
  evaluateKeys,
  openStore,
  parseStoreLocation,
  ROLLING_WINDOW_MS,
  StoreError,
  LIMIT_PERIODS,
  type KeyPatch,
  type KyselyStore,
  type LimitPeriod,
} from '../../store/index.js';
import { durationMs } from '../../shared/parse.js';
import { UsageError } from '../errors.js';
import { DEFAULT_DATA_DIR, DEFAULT_DATA_PORT, guessHost } from '../managed.js';

/** A key as the CLI shows it (the API's AccessKey plus 30-day usage). */
export type KeyView = AccessKeyJson & { trailing30DaysBytes?: number };

export interface AddOptions {
  name?: string;
  method?: string;
  limitBytes?: number;
  period?: LimitPeriod;
  expiresAt?: number;
  count?: number;
}

/** Where keys live: the local store, or a server's management API. Same operations either way. */
export interface KeysBackend {
  list(): Promise<KeyView[]>;
  get(id: string): Promise<KeyView>;
  add(o: AddOptions): Promise<KeyView[]>;
  remove(id: string): Promise<void>;
  rename(id: string, name: string): Promise<void>;
  limit(id: string, bytes: number | null, period?: LimitPeriod): Promise<void>;
  expire(id: string, at: number | null): Promise<void>;
  setEnabled(id: string, enabled: boolean): Promise<void>;
  /** ss:// (with the key name as tag) and, when known, ssconf:// for a key. */
  urls(id: string): Promise<{ ss: string; ssconf?: string; name: string }>;
  close(): Promise<void>;
}

const notFound = (id: string) => new UsageError(`no access key with id "${id}"`);

// ---- local store ---------------------------------------------------------------------------

export class LocalKeys implements KeysBackend {
  private constructor(private readonly store: KyselyStore) {}

  static async open(dataDir: string, storeSpec: string | undefined): Promise<LocalKeys> {
    try {
      // Defaults only matter when the CLI creates the store before the server ever ran.
      const defaults = { hostname: guessHost(), port: DEFAULT_DATA_PORT };
      return new LocalKeys(await openStore(parseStoreLocation(storeSpec, resolve(dataDir)), { defaults }));
    } catch (err) {
      if (err instanceof StoreError) throw new UsageError(err.message);
      throw err;
    }
  }

  async list(): Promise<KeyView[]> {
    const now = Date.now();
    const [statuses, settings, usage] = await Promise.all([
      evaluateKeys(this.store, now),
      this.store.getSettings(),
      this.store.usageSince(now - ROLLING_WINDOW_MS),
    ]);
    return statuses.map((s) => {
      const u = usage.get(s.key.id);
      return { ...toAccessKeyJson(s.key, settings, s), trailing30DaysBytes: u ? u.up + u.down : 0 };
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
    const { keys, settings } = await createAccessKeys(this.store, {
      method,
      makeSecret,
      count: o.count,
      name: o.name,
      dataLimitBytes: o.limitBytes,
      limitPeriod: o.period,
      expiresAt: o.expiresAt,
    });
    return keys.map((k) => toAccessKeyJson(k, settings));
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

  async urls(id: string): Promise<{ ss: string; ssconf?: string; name: string }> {
    const key = await this.store.getKey(id);
    if (!key) throw notFound(id);
    const settings = await this.store.getSettings();
    const tag = key.name || `key ${key.id}`;
    const ssconf = dynamicAccessUrl(key, settings, tag);
    return { ss: accessUrl(key, settings, tag), name: key.name, ...(ssconf ? { ssconf } : {}) };
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

// ---- remote API ----------------------------------------------------------------------------

/** `--api`: an apiUrl, or the whole access config line {"apiUrl":…,"certSha256":…}. */
export function parseApiTarget(
  api: string,
  certFlag: string | undefined,
  insecure: boolean,
): { apiUrl: string; certSha256?: string } {
  let apiUrl = api.trim();
  let cert = certFlag;
  if (apiUrl.startsWith('{')) {
    let cfg: { apiUrl?: unknown; certSha256?: unknown };
    try {
      cfg = JSON.parse(apiUrl) as typeof cfg;
    } catch {
      throw new UsageError(
        '--api: looks like JSON but does not parse; paste the whole {"apiUrl":…,"certSha256":…} line',
      );
    }
    if (typeof cfg.apiUrl !== 'string') throw new UsageError('--api: the JSON has no "apiUrl" string');
    apiUrl = cfg.apiUrl;
    if (cert === undefined && typeof cfg.certSha256 === 'string') cert = cfg.certSha256;
  }
  let u: URL;
  try {
    u = new URL(apiUrl);
  } catch {
    throw new UsageError(`--api: not a URL: "${apiUrl}"`);
  }
  if (u.protocol !== 'https:') throw new UsageError('--api: the management API URL must start with https://');
  if (cert !== undefined) {
    const hex = cert.replace(/:/g, '').toUpperCase();
    if (!/^[0-9A-F]{64}$/.test(hex))
      throw new UsageError('--cert-sha256: expected 64 hex digits (colons allowed)');
    return { apiUrl: apiUrl.replace(/\/+$/, ''), certSha256: hex };
  }
  if (!insecure) {
    throw new UsageError(
      '--api: give the certificate fingerprint (--cert-sha256, or paste the whole access config JSON), or --insecure',
    );
  }
  return { apiUrl: apiUrl.replace(/\/+$/, '') };
}

/** One HTTPS request with the certificate pinned by SHA-256: nothing is sent before the pin matches. */
export async function pinnedRequest(
  target: { apiUrl: string; certSha256?: string },
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: string }> {
  const url = new URL(target.apiUrl + path);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 443);
  const socket: TLSSocket = tlsConnect({
    host,
    port,
    rejectUnauthorized: false,
    ...(isIP(host) ? {} : { servername: host }),
  });
  socket.setTimeout(15_000, () => socket.destroy(new Error('timed out')));
  try {
    await once(socket, 'secureConnect');
  } catch (err) {
    throw new UsageError(`cannot reach ${url.host}: ${(err as Error).message}`);
  }
  if (target.certSha256 !== undefined) {
    const fp = socket.getPeerCertificate().fingerprint256?.replace(/:/g, '').toUpperCase();
    if (fp !== target.certSha256) {
      socket.destroy();
      throw new UsageError(
        `the server's certificate does not match --cert-sha256 (got ${fp ?? 'none'}); refusing to send anything`,
      );
    }
  }
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest(
      url,
      {
        method,
        createConnection: () => socket,
        headers:
          payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          socket.destroy();
          resolvePromise({ status: res.statusCode ?? 0, body: text });
        });
      },
    );
    req.on('error', (err) => reject(new UsageError(`request to ${url.host} failed: ${err.message}`)));
    req.end(payload);
  });
}

export class RemoteKeys implements KeysBackend {
  constructor(private readonly target: { apiUrl: string; certSha256?: string }) {}

  async #call<T>(method: string, path: string, body?: unknown, id?: string): Promise<T> {
    const res = await pinnedRequest(this.target, method, path, body);
    if (res.status === 404 && id !== undefined) throw notFound(id);
    if (res.status >= 400) {
      let msg = res.body;
      try {
        msg = (JSON.parse(res.body) as { message?: string }).message ?? res.body;
      } catch {
        // not JSON
      }
      throw new UsageError(`API error ${res.status}: ${msg}`);
    }
    return (res.body ? JSON.parse(res.body) : undefined) as T;
  }

  async list(): Promise<KeyView[]> {
    const [{ accessKeys }, transfer] = await Promise.all([
      this.#call<{ accessKeys: AccessKeyJson[] }>('GET', '/access-keys'),
      this.#call<{ bytesTransferredByUserId: Record<string, number> }>('GET', '/metrics/transfer'),
    ]);
    return accessKeys.map((k) => ({
      ...k,
      trailing30DaysBytes: transfer.bytesTransferredByUserId[k.id] ?? 0,
    }));
  }
  async get(id: string): Promise<KeyView> {
    return this.#call<AccessKeyJson>('GET', `/access-keys/${encodeURIComponent(id)}`, undefined, id);
  }
  async add(o: AddOptions): Promise<KeyView[]> {
    const common = {
      ...(o.method !== undefined ? { method: o.method } : {}),
      ...(o.limitBytes !== undefined ? { limit: { bytes: o.limitBytes } } : {}),
      ...(o.period !== undefined ? { dataLimitPeriod: o.period } : {}),
      ...(o.expiresAt !== undefined ? { expiresAt: o.expiresAt } : {}),
    };
    if ((o.count ?? 1) > 1) {
      const r = await this.#call<{ accessKeys: AccessKeyJson[] }>('POST', '/access-keys/bulk', {
        count: o.count,
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...common,
      });
      return r.accessKeys;
    }
    return [
      await this.#call<AccessKeyJson>('POST', '/access-keys', {
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...common,
      }),
    ];
  }
  async remove(id: string): Promise<void> {
    await this.#call('DELETE', `/access-keys/${encodeURIComponent(id)}`, undefined, id);
  }
  async rename(id: string, name: string): Promise<void> {
    await this.#call('PUT', `/access-keys/${encodeURIComponent(id)}/name`, { name }, id);
  }
  async limit(id: string, bytes: number | null, period?: LimitPeriod): Promise<void> {
    const p = `/access-keys/${encodeURIComponent(id)}/data-limit`;
    if (bytes === null) await this.#call('DELETE', p, undefined, id);
    else await this.#call('PUT', p, { limit: { bytes }, ...(period ? { period } : {}) }, id);
  }
  async expire(id: string, at: number | null): Promise<void> {
    const p = `/access-keys/${encodeURIComponent(id)}/expiry`;
    if (at === null) await this.#call('DELETE', p, undefined, id);
    else await this.#call('PUT', p, { expiresAt: at }, id);
  }
  async setEnabled(id: string, enabled: boolean): Promise<void> {
    await this.#call('PUT', `/access-keys/${encodeURIComponent(id)}/enabled`, { enabled }, id);
  }
  async urls(id: string): Promise<{ ss: string; ssconf?: string; name: string }> {
    const k = await this.get(id);
    const tag = k.name || `key ${k.id}`;
    const ss = `${k.accessUrl.replace(/#.*$/, '')}#${encodeURIComponent(tag)}`;
    return {
      ss,
      name: k.name,
      ...(k.dynamicAccessUrl ? { ssconf: `${k.dynamicAccessUrl}#${encodeURIComponent(tag)}` } : {}),
    };
  }
  async close(): Promise<void> {}
}

// ---- parsing and formatting ----------------------------------------------------------------

const UNITS: Record<string, number> = {
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** "10GB" (decimal), "1.5GiB" (binary), "123456" (bytes). */
export function parseSize(s: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(s);
  const unit = m ? UNITS[(m[2] || 'b').toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new UsageError(`${what}: expected a size like 500MB, 10GB or 1.5GiB, got "${s}"`);
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what}: too large: "${s}"`);
  return n;
}

/** "2026-12-31", an ISO date-time, or a relative "30d" / "12h" / "2w" from now. */
export function parseWhen(s: string, now = Date.now()): number {
  const rel = durationMs(s.trim().replace(/^\+/, ''));
  if (rel !== undefined) return now + rel;
  const ms = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(s.trim()) ? `${s.trim()}T00:00:00Z` : s);
  if (!Number.isFinite(ms))
    throw new UsageError(
      `expiry: expected a date (2026-12-31), a date-time, or a duration like 30d, got "${s}"`,
    );
  return ms;
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function periodOf(s: string | undefined): LimitPeriod | undefined {
  if (s === undefined) return undefined;
  const p = s === 'rolling' || s === '30d' ? 'rolling30d' : s;
  if (!(LIMIT_PERIODS as readonly string[]).includes(p)) {
    throw new UsageError(`--period must be one of rolling30d, daily, weekly, monthly, got "${s}"`);
  }
  return p as LimitPeriod;
}

export function formatTable(keys: readonly KeyView[]): string {
  const rows = [['ID', 'NAME', 'STATE', 'USED (window)', 'LIMIT', '30 DAYS', 'EXPIRES', 'LAST SEEN']];
  for (const k of keys) {
    rows.push([
      k.id,
      k.name || '-',
      k.state ?? (k.enabled ? 'active' : 'disabled'),
      k.dataUsed ? formatBytes(k.dataUsed.bytes) : '-',
      k.dataLimit
        ? `${formatBytes(k.dataLimit.bytes)}${k.dataLimitPeriod && k.dataLimitPeriod !== 'rolling30d' ? `/${k.dataLimitPeriod}` : ''}`
        : 'none',
      formatBytes(k.trailing30DaysBytes ?? 0),
      k.expiresAt ? k.expiresAt.replace(/:\d\d\.\d{3}Z$/, 'Z') : 'never',
      k.lastTrafficSeenTimestampMs
        ? new Date(k.lastTrafficSeenTimestampMs).toISOString().replace(/:\d\d\.\d{3}Z$/, 'Z')
        : 'never',
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, c) => cell.padEnd(widths[c]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

// ---- command -------------------------------------------------------------------------------

interface TargetFlags {
  dataDir?: string;
  store?: string;
  api?: string;
  certSha256?: string;
  insecure?: boolean;
}

async function backendFor(flags: TargetFlags): Promise<KeysBackend> {
  if (flags.api !== undefined) {
    if (flags.dataDir !== undefined || flags.store !== undefined)
      throw new UsageError('--api cannot be combined with --data-dir/--store');
    return new RemoteKeys(parseApiTarget(flags.api, flags.certSha256, flags.insecure === true));
  }
  return LocalKeys.open(flags.dataDir ?? DEFAULT_DATA_DIR, flags.store);
}

async function withBackend(cmd: Command, fn: (b: KeysBackend) => Promise<void>): Promise<void> {
  const b = await backendFor(cmd.optsWithGlobals<TargetFlags>());
  try {
    await fn(b);
  } finally {
    await b.close();
  }
}

async function printUrls(b: KeysBackend, id: string, qr: boolean, png?: string): Promise<void> {
  const u = await b.urls(id);
  const out = process.stdout;
  out.write(`${u.ss}\n`);
  if (u.ssconf) out.write(`${u.ssconf}\n`);
  if (qr) out.write(`${(await QRCode.toString(u.ss, { type: 'terminal', small: true })).trimEnd()}\n`);
  if (png !== undefined) {
    await QRCode.toFile(png, u.ss, { type: 'png', margin: 2, width: 512 });
    out.write(`QR code written to ${png}\n`);
  }
}

/** `ladder keys`: manage access keys in the local store or through a server's management API. */
export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description('manage access keys: add, list, rm, rename, limit, expire, enable, disable, url')
    .option(
      '--data-dir <dir>',
      `local store directory (default ./${DEFAULT_DATA_DIR}); a running server picks changes up within seconds`,
    )
    .option('--store <spec>', 'local store: sqlite:PATH or postgres://…')
    .option('--api <url|json>', 'remote: the apiUrl, or the whole {"apiUrl":…,"certSha256":…} line')
    .option('--cert-sha256 <hex>', 'remote: SHA-256 fingerprint of the API certificate (pinned)')
    .option('--insecure', 'remote: do not check the API certificate');

  keys
    .command('add')
    .description('create a key (or --count N keys) and print its ss:// URL and QR code')
    .option('--name <name>', 'display name')
    .option('--method <method>', `cipher (default ${DEFAULT_METHODS[0]})`)
    .option('--limit <size>', 'data limit, e.g. 10GB, 500MB, 1.5GiB')
    .option('--period <p>', 'limit window: rolling30d (default, as Outline), daily, weekly, monthly')
    .option('--expires <when>', 'expiry: 2026-12-31, an ISO date-time, or 30d/12h/2w from now')
    .option('--count <n>', 'create this many keys at once (named "<name> 1", …)')
    .action(
      async (
        o: {
          name?: string;
          method?: string;
          limit?: string;
          period?: string;
          expires?: string;
          count?: string;
        },
        cmd: Command,
      ) => {
        const count = o.count === undefined ? 1 : Number(o.count);
        if (!Number.isInteger(count) || count < 1 || count > 1000)
          throw new UsageError(`--count must be an integer in 1..1000, got "${o.count}"`);
        const period = periodOf(o.period);
        const add: AddOptions = {
          count,
          ...(o.name !== undefined ? { name: o.name } : {}),
          ...(o.method !== undefined ? { method: o.method } : {}),
          ...(o.limit !== undefined ? { limitBytes: parseSize(o.limit, '--limit') } : {}),
          ...(period ? { period } : {}),
          ...(o.expires !== undefined ? { expiresAt: parseWhen(o.expires) } : {}),
        };
        await withBackend(cmd, async (b) => {
          const made = await b.add(add);
          if (made.length === 1) {
            process.stdout.write(`created key ${made[0]!.id}${made[0]!.name ? ` "${made[0]!.name}"` : ''}\n`);
            await printUrls(b, made[0]!.id, true);
          } else {
            process.stdout.write(
              `created ${made.length} keys: ${made[0]!.id} … ${made[made.length - 1]!.id}\n`,
            );
            for (const k of made) process.stdout.write(`${k.id}\t${k.name}\t${k.accessUrl}\n`);
          }
        });
      },
    );

  keys
    .command('list')
    .description('table of keys with state, usage (current window and 30 days), limit and expiry')
    .option('--json', 'print JSON instead of a table')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      await withBackend(cmd, async (b) => {
        const list = await b.list();
        process.stdout.write(o.json ? `${JSON.stringify(list, null, 2)}\n` : formatTable(list));
      });
    });

  keys
    .command('rm')
    .description('delete a key (its open connections are closed)')
    .argument('<id>')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      await withBackend(cmd, async (b) => {
        await b.remove(id);
        process.stdout.write(`deleted key ${id}\n`);
      });
    });

  keys
    .command('rename')
    .description('rename a key')
    .argument('<id>')
    .argument('<name>')
    .action(async (id: string, name: string, _o: unknown, cmd: Command) => {
      await withBackend(cmd, (b) => b.rename(id, name));
    });

  keys
    .command('limit')
    .description('set a data limit (e.g. 10GB) or remove it ("none")')
    .argument('<id>')
    .argument('<size|none>')
    .option('--period <p>', 'rolling30d (default), daily, weekly, monthly')
    .action(async (id: string, size: string, o: { period?: string }, cmd: Command) => {
      const bytes = size === 'none' ? null : parseSize(size, 'limit');
      const period = periodOf(o.period);
      await withBackend(cmd, (b) => b.limit(id, bytes, period));
    });

  keys
    .command('expire')
    .description('set when a key stops working (2026-12-31, ISO date-time, 30d) or "never"')
    .argument('<id>')
    .argument('<when|never>')
    .action(async (id: string, when: string, _o: unknown, cmd: Command) => {
      const at = when === 'never' ? null : parseWhen(when);
      await withBackend(cmd, (b) => b.expire(id, at));
    });

  for (const [name, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    keys
      .command(name)
      .description(enabled ? 'let a disabled key work again' : 'stop a key working without deleting it')
      .argument('<id>')
      .action(async (id: string, _o: unknown, cmd: Command) => {
        await withBackend(cmd, (b) => b.setEnabled(id, enabled));
      });
  }

  keys
    .command('url')
    .description('print the ss:// and ssconf:// URLs of a key and its QR code')
    .argument('<id>')
    .option('--qr-png <file>', 'also write the QR code as a PNG image')
    .option('--no-qr', 'do not print the QR code')
    .action(async (id: string, o: { qrPng?: string; qr?: boolean }, cmd: Command) => {
      await withBackend(cmd, (b) => printUrls(b, id, o.qr !== false, o.qrPng));
    });
}
