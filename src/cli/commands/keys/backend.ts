/** What `ladder keys` works on: a local store or a server's API, behind one interface. */
import type { AccessKeyJson } from '../../../api/index.js';
import type { LimitPeriod } from '../../../store/index.js';
import { UsageError } from '../../errors.js';
import { printable } from '../../terminal.js';

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
  /** The key's URLs; `web` (v2ray-plugin, the web front) when a local server has a web front. */
  urls(id: string): Promise<{ ss: string; ssconf?: string; web?: string; name: string }>;
  close(): Promise<void>;
}

export const notFound = (id: string): UsageError =>
  new UsageError(`no access key with id "${printable(id)}"`);
