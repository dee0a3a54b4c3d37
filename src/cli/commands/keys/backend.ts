/** What `ladder keys` works on: a local store or a server's API, behind one interface. */
import type { AccessKeyJson } from '../../../api/index.js';
import type { LimitField, LimitPeriod } from '../../../store/index.js';
import { UsageError } from '../../errors.js';
import { printable } from '../../terminal.js';

/** A key as the CLI shows it (the API's AccessKey plus 30-day usage). */
export type KeyView = AccessKeyJson & { trailing30DaysBytes?: number };

export interface KeyUrls {
  ss: string;
  ssconf?: string;
  /** https://…/sub/{token}: every app's format, a page with QR codes in a browser. */
  sub?: string;
  /** v2ray-plugin URL over the web front, when a local server has one. */
  web?: string;
  /** The key over the web front's HTTPUpgrade (ladder client, mihomo), when a local server has one. */
  httpupgrade?: string;
  /** The key over the web front's gRPC service (ladder client), where the front takes gRPC. */
  grpc?: string;
  /** The key through the local server's ShadowTLS v3 port, when it runs one. */
  shadowtls?: string;
  name: string;
  /** The key's Outline prefix setting ('auto' | 'off' | hex); absent for 2022 keys. */
  prefix?: string;
}

export interface AddOptions {
  name?: string;
  method?: string;
  limitBytes?: number;
  period?: LimitPeriod;
  expiresAt?: number;
  count?: number;
  /** --prefix as typed: auto, off, hex or Outline's URL-escaped string. */
  prefix?: string;
  /** --devices: client addresses at once. */
  deviceLimit?: number;
  /** --speed: bytes per second each way. */
  speedLimit?: number;
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
  /** Set (a number) or remove (null) a key's device or speed limit (docs/limits.md). */
  keyLimit(id: string, field: LimitField, value: number | null): Promise<void>;
  /** --prefix as typed (auto, off, hex, Outline's URL-escaped string); refused if it does not fit the key. */
  setPrefix(id: string, prefix: string): Promise<void>;
  /** A new secret (`password`, else a fresh one); keeps id, name, limits, usage and the access token. */
  rotate(id: string, password?: string): Promise<void>;
  /** ss:// (with the key name as tag) and, when known, ssconf:// and the subscription URL of a key. */
  urls(id: string): Promise<KeyUrls>;
  close(): Promise<void>;
}

export const notFound = (id: string): UsageError =>
  new UsageError(`no access key with id "${printable(id)}"`);
