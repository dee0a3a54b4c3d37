/**
 * `ladder probe --servers KEY|FILE…`: the self-check (src/probe/servers.ts) over the endpoints of
 * ss:// keys, dynamic keys (ssconf:// or https://, fetched here: a fetch that fails is itself a
 * row) and subscription files (SIP008, ss:// lines or base64 of them, Outline YAML/JSON).
 * Exit code: 0 when every endpoint is reachable, 3 when some is not, 2 for bad input.
 */
import { readFileSync } from 'node:fs';
import { createTunnelDialer, endpointFromKey } from '../../client/index.js';
import {
  DynamicKeyFetchError,
  fetchDynamicKey,
  isDynamicKeyUrl,
  parseDynamicKeyUrl,
} from '../../client/dynamic-fetch.js';
import { parseDynamicKeyBody, refusalText } from '../../client/dynamic-key.js';
import type { KeyEndpoint } from '../../client/key.js';
import { fileErrorWhy } from '../../config/errors.js';
import type { HostPort } from '../../probe/dns.js';
import {
  checkServers,
  fetchFailed,
  maskedName,
  type ServerCheck,
  type ServerTarget,
} from '../../probe/servers.js';
import { serverCheckJson, serversTable } from '../../probe/servers-report.js';
import { isUserError, UsageError } from '../errors.js';

/**
 * Whether an item looks like a URL or a key rather than a path: a scheme (`x ss://…`, a key with
 * a stray quote, `ss:` without the slashes) or a user part (`…@host:port`). Such an item is never
 * repeated in an error: it may hold a password.
 */
export function urlLike(item: string): boolean {
  return /:\/\/|^\W*[a-z][a-z0-9+.-]+:|@/i.test(item);
}

/**
 * A file the user named, as text; a one-line error naming it when it cannot be read, or `what`
 * without the item's text when the item looks like a URL (see urlLike).
 */
export function readInputFile(path: string, what = 'input', isNot = 'a key, URL or readable file'): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (urlLike(path)) throw new UsageError(`${what}: not ${isNot} (not repeated here)`, 'ERR_INPUT');
    throw new UsageError(`${path}: ${fileErrorWhy(err)}`, 'ERR_INPUT');
  }
}

/** Some endpoint is not reachable from this network. */
export const EXIT_UNREACHABLE = 3;

/** `what: message` as a one-line usage error for a user mistake; a bug stays a bug. */
function inputError(what: string, err: unknown): never {
  if (!isUserError(err) && !(err instanceof DynamicKeyFetchError)) throw err;
  const msg = (err as Error).message.replace(/^dynamic key: /, '');
  throw new UsageError(`${what}: ${msg}`, 'ERR_INPUT');
}

type Source = { kind: 'endpoints'; endpoints: KeyEndpoint[] } | { kind: 'failed'; check: ServerCheck };

async function endpointsOf(item: string, n: number, timeoutMs: number): Promise<Source> {
  const what = `--servers #${n}`;
  if (/^ss:\/\//i.test(item.trim())) {
    try {
      return { kind: 'endpoints', endpoints: [endpointFromKey(item, 'local')] };
    } catch (err) {
      inputError(what, err);
    }
  }
  if (isDynamicKeyUrl(item)) {
    let key;
    try {
      key = parseDynamicKeyUrl(item);
    } catch (err) {
      inputError(what, err);
    }
    const name = `${item.trim().startsWith('ssconf') ? 'ssconf' : 'https'}://${key.url.host}/… (dynamic key)`;
    let body;
    try {
      body = parseDynamicKeyBody(await fetchDynamicKey(key, { timeoutMs }));
    } catch (err) {
      if (!(err instanceof DynamicKeyFetchError) && !isUserError(err)) throw err;
      return { kind: 'failed', check: fetchFailed(name, (err as Error).message) };
    }
    if (body.kind === 'error') return { kind: 'failed', check: fetchFailed(name, refusalText(body)) };
    return { kind: 'endpoints', endpoints: body.endpoints };
  }
  const text = readInputFile(item, what);
  try {
    const body = parseDynamicKeyBody(text);
    if (body.kind === 'error') throw new UsageError(`${item}: ${refusalText(body)}`, 'ERR_INPUT');
    return { kind: 'endpoints', endpoints: body.endpoints };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    inputError(item, err);
  }
}

/**
 * The items of `--servers` as given, with several keys pasted into one quoted argument (a list
 * copied from a subscription or a chat, one key a line or space-separated) split at each
 * whitespace that is followed by another key's scheme. Without the split the first key's tag
 * swallowed the rest, passwords included, and the table printed it.
 */
export function splitServerItems(items: readonly string[]): string[] {
  return items.flatMap((item) =>
    /^\s*(ss|ssconf|https):\/\//i.test(item)
      ? item
          .trim()
          .split(/\s+(?=(?:ss|ssconf|https):\/\/)/i)
          .filter((x) => x !== '')
      : [item],
  );
}

export interface ServerCheckFlags {
  servers: string[];
  dns?: HostPort | undefined;
  target: URL;
  timeoutMs: number;
  concurrency: number;
}

/** Run the self-check; returns the checks (the caller writes JSON) and prints the table. */
export async function runServerCheck(f: ServerCheckFlags): Promise<ServerCheck[]> {
  // Every key and file is read (and dynamic keys fetched) before any endpoint is measured.
  const sources: Source[] = [];
  for (const [i, item] of splitServerItems(f.servers).entries())
    sources.push(await endpointsOf(item, i + 1, f.timeoutMs));
  const targets = sources.flatMap((s): Array<ServerTarget | ServerCheck> =>
    s.kind === 'failed'
      ? [s.check]
      : s.endpoints.map((ep): ServerTarget => ({
          name: maskedName(ep, ep.tag),
          host: ep.host,
          port: ep.port,
          websocket: ep.websocket,
          grpc: ep.grpc,
          shadowTls: ep.shadowTls,
          dialer: (nextHop) => createTunnelDialer({ ...ep, nextHop }, { connectTimeoutMs: f.timeoutMs }),
        })),
  );
  const live = targets.filter((t): t is ServerTarget => 'dialer' in t);
  const checked = await checkServers(live, {
    dns: f.dns,
    target: f.target,
    timeoutMs: f.timeoutMs,
    concurrency: f.concurrency,
  });
  let k = 0;
  const checks = targets.map((t) => ('dialer' in t ? checked[k++]! : t));
  process.stdout.write(serversTable(checks));
  if (checks.some((c) => c.blocking)) process.exitCode = EXIT_UNREACHABLE;
  return checks;
}

export { serverCheckJson };
