/**
 * C7 pointed at a web port (issue 12, D7/D17): the active prober's view of a web front. It sends
 * what a prober sends to a suspected web proxy — browser-like GET, HEAD, POST, OPTIONS,
 * /favicon.ico, /robots.txt, WebSocket upgrades on unknown paths and on a near miss of the
 * secret path, a bad upgrade on the secret path itself, a plain GET of the secret path, an
 * HTTP garbage line and random bytes of the replay prober's lengths — to the front and to a
 * plain web server serving the same site (the reference), and compares the answers byte for
 * byte (the Date header's value aside) and by how the connection ended.
 *
 * Verdict "web server": every answer equals the reference's, the near-miss path is answered
 * like a random unknown path, and GET / is an ordinary 200 page. Anything else is
 * "not a plain web server", with the differing probes as evidence.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { Endpoint } from './censor.js';
import { assertLoopback } from './world.js';
import type { Reaction } from './prober.js';

export interface WebProbeTarget {
  readonly endpoint: Endpoint;
  /** TLS with this SNI, trusting `ca`; plain HTTP without. */
  readonly tls?: { readonly servername: string; readonly ca: Buffer };
}

export interface WebProbeResult {
  readonly name: string;
  /** How the connection ended (FIN, RST, TIMEOUT: still open after the wait); the bytes are in `response`. */
  readonly reaction: Reaction;
  /** The answer with the Date header's value blanked (what the comparison uses). */
  readonly response: string;
}

export interface WebVerdict {
  readonly verdict: 'web server' | 'not a plain web server';
  readonly probes: number;
  /** Probes whose answer differed from the reference (or from a random unknown path). */
  readonly differences: readonly string[];
  readonly results: readonly WebProbeResult[];
}

export interface WebProbeOptions {
  /** The secret path, to derive the near-miss probes from (the prober never learns it). */
  readonly secretPath: string;
  readonly host: string;
  /** How long a probe waits for the server to close (real ms; default 5000; every probe here asks for a close). */
  readonly waitMs?: number;
}

const UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';

function upgrade(path: string, host: string, key = randomBytes(16).toString('base64')): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: ${UA}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  );
}

/** The near miss: the secret path with its last character changed. */
function nearMiss(secret: string): string {
  const last = secret.at(-1) ?? 'a';
  return secret.slice(0, -1) + (last === 'x' ? 'y' : 'x');
}

/** The probe list: [name, bytes]. Random parts are drawn once so front and reference get the same bytes. */
export function webProbes(opts: WebProbeOptions): Array<[string, Buffer]> {
  const h = opts.host;
  const get = (path: string, extra = ''): string =>
    `GET ${path} HTTP/1.1\r\nHost: ${h}\r\nUser-Agent: ${UA}\r\nAccept: text/html,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.9\r\n${extra}Connection: close\r\n\r\n`;
  const unknown = `/${randomBytes(9).toString('base64url')}`;
  const key = randomBytes(16).toString('base64');
  const probes: Array<[string, string | Buffer]> = [
    ['GET /', get('/')],
    ['HEAD /', `HEAD / HTTP/1.1\r\nHost: ${h}\r\nUser-Agent: ${UA}\r\nConnection: close\r\n\r\n`],
    ['GET /favicon.ico', get('/favicon.ico')],
    ['GET /robots.txt', get('/robots.txt')],
    ['GET unknown path', get(unknown)],
    [
      'POST /',
      `POST / HTTP/1.1\r\nHost: ${h}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nConnection: close\r\n\r\nq=hello`,
    ],
    ['OPTIONS *', `OPTIONS * HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n`],
    ['upgrade, unknown path', upgrade(`${unknown}/tcp`, h, key)],
    ['upgrade, near-miss secret path', upgrade(`${nearMiss(opts.secretPath)}/tcp`, h, key)],
    ['upgrade on the secret path, bad key', upgrade(`${opts.secretPath}/tcp`, h, 'not-a-key')],
    ['GET the secret path, no upgrade', get(`${opts.secretPath}/tcp`)],
    ['garbage line', 'HELLO THERE\r\n\r\n'],
    ['random 50 bytes', randomBytes(50)],
    ['random 221 bytes', randomBytes(221)],
  ];
  return probes.map(([n, b]) => [n, typeof b === 'string' ? Buffer.from(b, 'latin1') : b]);
}

const DATE = /^(date:)[^\r\n]*/gim;
/** Times a differing probe is asked again before the difference counts. */
const RETRIES = 2;

/** Send one probe and read until the server closes or `waitMs` passes. */
export function sendWebProbe(
  target: WebProbeTarget,
  bytes: Buffer,
  waitMs: number,
): Promise<Omit<WebProbeResult, 'name'>> {
  assertLoopback(target.endpoint.host);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const sock: net.Socket = target.tls
      ? tls.connect({
          host: target.endpoint.host,
          port: target.endpoint.port,
          servername: target.tls.servername,
          ca: target.tls.ca,
        })
      : net.connect(target.endpoint);
    const finish = (reaction: Reaction): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(chunks).toString('latin1').replace(DATE, '$1 *');
      resolve({ reaction, response: text });
    };
    const timer = setTimeout(() => finish('TIMEOUT'), waitMs);
    sock.once(target.tls ? 'secureConnect' : 'connect', () => sock.write(bytes));
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('end', () => finish('FIN'));
    sock.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNRESET' ? 'RST' : 'ERROR'));
  });
}

/** Every probe at once (each on its own connection): the whole run takes about one `waitMs`. */
function probeAll(
  target: WebProbeTarget,
  probes: Array<[string, Buffer]>,
  waitMs: number,
): Promise<WebProbeResult[]> {
  return Promise.all(
    probes.map(async ([name, bytes]) => ({ name, ...(await sendWebProbe(target, bytes, waitMs)) })),
  );
}

/**
 * Probe `front` and `reference` with the same bytes and judge. The reference is a plain web
 * server with the same site (e.g. the same decoy without the WebSocket endpoints).
 */
export async function probeWebFront(
  front: WebProbeTarget,
  reference: WebProbeTarget,
  opts: WebProbeOptions,
): Promise<WebVerdict> {
  const waitMs = opts.waitMs ?? 5000;
  const probes = webProbes(opts);
  const [mine, ref] = await Promise.all([
    probeAll(front, probes, waitMs),
    probeAll(reference, probes, waitMs),
  ]);
  const differences: string[] = [];
  const same = (a: Omit<WebProbeResult, 'name'>, b: Omit<WebProbeResult, 'name'>): boolean =>
    a.reaction === b.reaction && a.response === b.response;
  for (let i = 0; i < mine.length; i++) {
    // A difference is asked again, one pair at a time (as a prober repeats a probe): on a busy
    // machine a close can miss the wait; a real difference repeats.
    for (let retry = 0; retry < RETRIES && !same(mine[i]!, ref[i]!); retry++) {
      const [name, bytes] = probes[i]!;
      mine[i] = { name, ...(await sendWebProbe(front, bytes, waitMs)) };
      ref[i] = { name, ...(await sendWebProbe(reference, bytes, waitMs)) };
    }
    const [r, x] = [mine[i]!, ref[i]!];
    if (!same(r, x))
      differences.push(
        `${r.name}: ${summary(r)} where a plain web server gives ${summary(x)}${whereDiffers(r.response, x.response)}`,
      );
  }
  const byName = new Map(mine.map((r) => [r.name, r]));
  const miss = byName.get('upgrade, near-miss secret path');
  const unknown = byName.get('upgrade, unknown path');
  if (miss && unknown && (miss.reaction !== unknown.reaction || miss.response !== unknown.response))
    differences.push(
      `near-miss secret path answered unlike an unknown path: ${summary(miss)} vs ${summary(unknown)}`,
    );
  const home = byName.get('GET /');
  if (!home || !/^HTTP\/1\.1 200 /.test(home.response))
    differences.push(`GET /: ${home ? summary(home) : 'missing'}`);
  return {
    verdict: differences.length === 0 ? 'web server' : 'not a plain web server',
    probes: probes.length,
    differences,
    results: mine,
  };
}

/** Where two same-status answers part, for the evidence: the offset and a few bytes of each. */
function whereDiffers(a: string, b: string): string {
  if (a === b) return '';
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const near = (t: string): string => JSON.stringify(t.slice(Math.max(0, i - 8), i + 24));
  return `; first difference at byte ${i}: ${near(a)} vs ${near(b)}`;
}

function summary(r: Omit<WebProbeResult, 'name'>): string {
  const status = /^HTTP\/1\.[01] \d{3}[^\r\n]*/.exec(r.response)?.[0];
  return `${r.reaction}${status ? ` "${status}"` : ''} (${r.response.length} bytes)`;
}
