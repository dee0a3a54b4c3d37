/** `ladder keys --api`: the same operations through a server's management API, certificate pinned. */
import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { AccessKeyJson } from '../../../api/index.js';
import type { LimitField, LimitPeriod } from '../../../store/index.js';
import { UsageError } from '../../errors.js';
import { notFound, type AddOptions, type KeysBackend, type KeyUrls, type KeyView } from './backend.js';

/** Where the API target came from: messages name what the user typed or set. */
export type ApiSource = '--api' | 'LADDER_API';

export interface ApiTarget {
  apiUrl: string;
  certSha256?: string;
  /** What gave the pin (`--cert-sha256`, or the access config's certSha256 in --api/LADDER_API). */
  certFrom?: string;
}

/**
 * `--api` (or LADDER_API, `source`): an apiUrl, or the whole access config line
 * {"apiUrl":…,"certSha256":…}.
 */
export function parseApiTarget(
  api: string,
  certFlag: string | undefined,
  insecure: boolean,
  source: ApiSource = '--api',
): ApiTarget {
  let apiUrl = api.trim();
  let cert = certFlag;
  let certFrom = '--cert-sha256';
  if (apiUrl.startsWith('{')) {
    let cfg: { apiUrl?: unknown; certSha256?: unknown };
    try {
      cfg = JSON.parse(apiUrl) as typeof cfg;
    } catch {
      throw new UsageError(
        `${source}: looks like JSON but does not parse; paste the whole {"apiUrl":…,"certSha256":…} line`,
      );
    }
    if (typeof cfg.apiUrl !== 'string') throw new UsageError(`${source}: the JSON has no "apiUrl" string`);
    apiUrl = cfg.apiUrl;
    if (cert === undefined && typeof cfg.certSha256 === 'string') {
      cert = cfg.certSha256;
      certFrom = `the certSha256 in ${source}`;
    }
  }
  let u: URL;
  try {
    u = new URL(apiUrl);
  } catch {
    // Not echoed: what was typed may hold the API's secret path.
    throw new UsageError(
      `${source}: not a URL (expected https://HOST:PORT/SECRET, or the access config JSON line)`,
    );
  }
  if (u.protocol !== 'https:')
    throw new UsageError(`${source}: the management API URL must start with https://`);
  if (cert !== undefined) {
    const hex = cert.replace(/:/g, '').toUpperCase();
    if (!/^[0-9A-F]{64}$/.test(hex))
      throw new UsageError(`${certFrom}: expected 64 hex digits (colons allowed)`);
    return { apiUrl: apiUrl.replace(/\/+$/, ''), certSha256: hex, certFrom };
  }
  if (!insecure) {
    throw new UsageError(
      `${source}: give the certificate fingerprint (--cert-sha256, or the whole access config JSON), or --insecure`,
    );
  }
  return { apiUrl: apiUrl.replace(/\/+$/, '') };
}

/** The longest answer the management API client reads (characters of text). */
const MAX_RESPONSE_CHARS = 64 * 1024 * 1024;

// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x1f\x7f]+/g;

/** A server's text in one bounded line, control characters as spaces. */
function shownBody(text: string): string {
  const t = text.replace(CONTROLS, ' ').replace(/ {2,}/g, ' ').trim();
  return t.length > 200 ? `${t.slice(0, 200)}…` : t || '(empty)';
}

/** One HTTPS request with the certificate pinned by SHA-256: nothing is sent before the pin matches. */
export async function pinnedRequest(
  target: ApiTarget,
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
        `the server's certificate does not match ${target.certFrom ?? '--cert-sha256'} (got ${fp ?? 'none'}); refusing to send anything`,
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
        res.on('data', (c: string) => {
          text += c;
          // Bounded: a key listing is kilobytes; a server that does not stop is not answering.
          if (text.length > MAX_RESPONSE_CHARS) {
            socket.destroy();
            reject(
              new UsageError(
                `the management API at ${url.host} sent more than ${MAX_RESPONSE_CHARS} characters`,
              ),
            );
          }
        });
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

/** Whether `v` has the type `type` when present (a key's optional fields). */
const absentOr = (v: unknown, type: 'string' | 'number' | 'boolean'): boolean =>
  v === undefined || typeof v === type;
/** `{devices: N}` / `{bytesPerSecond: N}` (a key's device and speed limits), or absent. */
const countOrAbsent = (v: unknown, field: string): boolean =>
  v === undefined ||
  (typeof v === 'object' && v !== null && typeof (v as Record<string, unknown>)[field] === 'number');
const bytesOrAbsent = (v: unknown): boolean =>
  v === undefined ||
  (typeof v === 'object' && v !== null && typeof (v as { bytes?: unknown }).bytes === 'number');

/** An access key as `ladder keys` reads it: Outline's fields it prints (id, name, accessUrl) and
 *  the optional ones (Ladder's extensions) with their types when present. */
function isKey(v: unknown): v is AccessKeyJson {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const k = v as Record<string, unknown>;
  return (
    typeof k.id === 'string' &&
    typeof k.name === 'string' &&
    typeof k.accessUrl === 'string' &&
    bytesOrAbsent(k.dataLimit) &&
    bytesOrAbsent(k.dataUsed) &&
    countOrAbsent(k.deviceLimit, 'devices') &&
    countOrAbsent(k.speedLimit, 'bytesPerSecond') &&
    ['dataLimitPeriod', 'expiresAt', 'state', 'prefix', 'dynamicAccessUrl', 'subscriptionUrl'].every((f) =>
      absentOr(k[f], 'string'),
    ) &&
    absentOr(k.enabled, 'boolean') &&
    absentOr(k.lastTrafficSeenTimestampMs, 'number')
  );
}

const isKeyList = (v: unknown): v is { accessKeys: AccessKeyJson[] } =>
  typeof v === 'object' &&
  v !== null &&
  Array.isArray((v as { accessKeys?: unknown }).accessKeys) &&
  (v as { accessKeys: unknown[] }).accessKeys.every(isKey);

const isTransfer = (v: unknown): v is { bytesTransferredByUserId: Record<string, unknown> } => {
  const used =
    typeof v === 'object' && v !== null
      ? (v as { bytesTransferredByUserId?: unknown }).bytesTransferredByUserId
      : undefined;
  return typeof used === 'object' && used !== null && !Array.isArray(used);
};

export class RemoteKeys implements KeysBackend {
  constructor(private readonly target: ApiTarget) {}

  /** The answer's text and its JSON (undefined when empty); an error status or text that is not JSON refused. */
  async #request(
    method: string,
    path: string,
    body?: unknown,
    id?: string,
  ): Promise<{ text: string; value: unknown }> {
    const res = await pinnedRequest(this.target, method, path, body);
    if (res.status >= 400) {
      let msg = res.body;
      let code: unknown;
      try {
        const answer = JSON.parse(res.body) as { message?: unknown; code?: unknown } | null;
        if (typeof answer?.message === 'string') msg = answer.message;
        code = answer?.code;
      } catch {
        // not JSON
      }
      // An unknown path (Outline's and Ladder's ResourceNotFound): the apiUrl's secret path is
      // wrong, whatever the key id; only a 404 for the key itself means no such key.
      if (res.status === 404 && code === 'ResourceNotFound')
        throw new UsageError(
          '--api: the server has no such API path (404): check the secret path in the apiUrl (ladder server access-config on the server prints the access config)',
        );
      if (res.status === 404 && id !== undefined) throw notFound(id);
      throw new UsageError(`API error ${res.status}: ${shownBody(msg)}`);
    }
    if (!res.body) return { text: res.body, value: undefined };
    try {
      return { text: res.body, value: JSON.parse(res.body) as unknown };
    } catch {
      // A proxy's or another program's page: one line, not a stack trace as if ladder had a bug.
      throw new UsageError(
        `the management API answered ${method} ${path} with ${res.status} and a body that is not JSON: ${shownBody(res.body)}`,
      );
    }
  }

  /** A request whose answer is not read (a change: Outline answers 204). */
  async #call(method: string, path: string, body?: unknown, id?: string): Promise<void> {
    await this.#request(method, path, body, id);
  }

  /** A request whose answer is read: refused in one line when it is not `what` (`ok` says). */
  async #shaped<T>(
    ok: (v: unknown) => v is T,
    what: string,
    method: string,
    path: string,
    body?: unknown,
    id?: string,
  ): Promise<T> {
    const { text, value } = await this.#request(method, path, body, id);
    if (ok(value)) return value;
    // One line, as for a body that is not JSON: the code reading it would fail as if ladder had a bug.
    throw new UsageError(`the management API answered ${method} ${path} without ${what}: ${shownBody(text)}`);
  }

  async list(): Promise<KeyView[]> {
    // Both at once; when both fail, the keys' error is the one told (the same every run).
    const [keys, transfer] = await Promise.allSettled([
      this.#shaped(isKeyList, 'an "accessKeys" list of keys', 'GET', '/access-keys'),
      this.#shaped(isTransfer, 'a "bytesTransferredByUserId" object', 'GET', '/metrics/transfer'),
    ]);
    if (keys.status === 'rejected') throw keys.reason;
    if (transfer.status === 'rejected') throw transfer.reason;
    const bytes = transfer.value.bytesTransferredByUserId;
    return keys.value.accessKeys.map((k) => ({
      ...k,
      trailing30DaysBytes: typeof bytes[k.id] === 'number' ? (bytes[k.id] as number) : 0,
    }));
  }
  async get(id: string): Promise<KeyView> {
    return this.#shaped(isKey, 'a key', 'GET', `/access-keys/${encodeURIComponent(id)}`, undefined, id);
  }
  async add(o: AddOptions): Promise<KeyView[]> {
    const common = {
      ...(o.method !== undefined ? { method: o.method } : {}),
      ...(o.limitBytes !== undefined ? { limit: { bytes: o.limitBytes } } : {}),
      ...(o.period !== undefined ? { dataLimitPeriod: o.period } : {}),
      // The CLI checked it already (a past one only with --force): the API need not ask again.
      ...(o.expiresAt !== undefined ? { expiresAt: o.expiresAt, allowPastExpiry: true } : {}),
      ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
      ...(o.deviceLimit !== undefined ? { deviceLimit: { devices: o.deviceLimit } } : {}),
      ...(o.speedLimit !== undefined ? { speedLimit: { bytesPerSecond: o.speedLimit } } : {}),
    };
    if ((o.count ?? 1) > 1) {
      const r = await this.#shaped(isKeyList, 'an "accessKeys" list of keys', 'POST', '/access-keys/bulk', {
        count: o.count,
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...common,
      });
      return r.accessKeys;
    }
    return [
      await this.#shaped(isKey, 'a key', 'POST', '/access-keys', {
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
    else await this.#call('PUT', p, { expiresAt: at, allowPastExpiry: true }, id); // checked as in add
  }
  async setEnabled(id: string, enabled: boolean): Promise<void> {
    await this.#call('PUT', `/access-keys/${encodeURIComponent(id)}/enabled`, { enabled }, id);
  }
  async keyLimit(id: string, field: LimitField, value: number | null): Promise<void> {
    const p = `/access-keys/${encodeURIComponent(id)}/${field === 'deviceLimit' ? 'device' : 'speed'}-limit`;
    if (value === null) await this.#call('DELETE', p, undefined, id);
    else
      await this.#call(
        'PUT',
        p,
        { limit: field === 'deviceLimit' ? { devices: value } : { bytesPerSecond: value } },
        id,
      );
  }
  async rotate(id: string, password?: string): Promise<void> {
    const body = password === undefined ? {} : { password };
    await this.#call('POST', `/access-keys/${encodeURIComponent(id)}/rotate`, body, id);
  }
  async setPrefix(id: string, prefix: string): Promise<void> {
    await this.#call('PUT', `/access-keys/${encodeURIComponent(id)}/prefix`, { prefix }, id);
  }
  async urls(id: string): Promise<KeyUrls> {
    const k = await this.get(id);
    const tag = k.name || `key ${k.id}`;
    const ss = `${k.accessUrl.replace(/#.*$/, '')}#${encodeURIComponent(tag)}`;
    return {
      ss,
      name: k.name,
      ...(k.prefix !== undefined ? { prefix: k.prefix } : {}),
      ...(k.dynamicAccessUrl ? { ssconf: `${k.dynamicAccessUrl}#${encodeURIComponent(tag)}` } : {}),
      ...(k.subscriptionUrl ? { sub: k.subscriptionUrl } : {}),
    };
  }
  async close(): Promise<void> {}
}
