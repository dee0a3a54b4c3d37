/**
 * Spawning real processes for interop tests and the benchmark: shadowsocks-libev (ss-server,
 * ss-local) and Ladder itself through its CLI (`node bin/ladder.js ...`), so the tests cover what
 * users run. Each process is waited on until its port accepts, its output is kept (bounded) for
 * diagnostics, and it is killed on teardown (and on exit of the test process as a last resort).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanEnv } from './clean-env.js';
import { freePort, waitForPort } from './net.js';
import { skipUnless } from './prereq.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const LADDER_BIN = join(REPO_ROOT, 'bin', 'ladder.js');

/** The SIP004 methods, all of which shadowsocks-libev has (v2ray 4.34 lacks aes-192-gcm). */
export const METHODS = ['aes-128-gcm', 'aes-192-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305'] as const;
export type Method = (typeof METHODS)[number];

/** Absolute path of an executable on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/**
 * For `{ skip: peerSkip('ss-server') }` on a describe/test: false when every binary is present;
 * otherwise skips loudly, or fails under CI=true (the rule in ./prereq.ts).
 */
export function peerSkip(...names: string[]): string | false {
  const missing = names.filter((n) => which(n) === undefined);
  return skipUnless(
    missing.length === 0,
    `peer binary missing: ${missing.join(', ')} (apt-get install shadowsocks-libev)`,
  );
}

/** Path of a required peer binary; throws (with the same CI rule) when missing. */
export function requirePeer(name: string): string {
  const p = which(name);
  if (p) return p;
  const reason = peerSkip(name);
  throw new Error(reason || `peer binary missing: ${name}`);
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

export interface Peer {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** The (bounded) combined stdout+stderr so far, for diagnostics. */
  output(): string;
  readonly exited: boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  /** Wait until this TCP port accepts before resolving. */
  waitPort?: number;
  waitHost?: string;
  waitTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep at most this many bytes of output (default 64 KiB, the tail). */
  maxOutput?: number;
}

/** Spawn `cmd args`, capture output, wait for its port; kill on teardown. */
export async function spawnPeer(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions = {},
): Promise<Peer> {
  installExitHook();
  const max = opts.maxOutput ?? 64 * 1024;
  let out = '';
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let exited = false;
  let exitInfo = '';
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      exitInfo = `exited code=${code} signal=${signal}`;
      live.delete(child);
      resolve();
    });
  });
  const onOut = (b: Buffer): void => {
    out += b.toString('utf8');
    if (out.length > max) out = out.slice(out.length - max);
  };
  child.stdout!.on('data', onOut);
  child.stderr!.on('data', onOut);
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  spawnError.catch(() => undefined);

  const peer: Peer = {
    name,
    get pid() {
      return child.pid ?? -1;
    },
    child,
    output: () => out,
    get exited() {
      return exited;
    },
    async stop(graceMs = 3000) {
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exitPromise;
      clearTimeout(t);
    },
  };

  if (opts.waitPort !== undefined) {
    const died = exitPromise.then(() => {
      throw new Error(`${name} ${exitInfo} before its port accepted`);
    });
    died.catch(() => undefined);
    try {
      await Promise.race([
        waitForPort(opts.waitPort, opts.waitHost, opts.waitTimeoutMs ?? 20_000),
        died,
        spawnError,
      ]);
    } catch (err) {
      await peer.stop(500);
      throw new Error(`${name} failed to start: ${(err as Error).message}\n--- output ---\n${out}`, {
        cause: err,
      });
    }
  }
  return peer;
}

export interface SsServerOptions {
  method: Method;
  password: string;
  port?: number;
  /** Idle timeout in seconds (ss-server -t). */
  timeout?: number;
  extraArgs?: string[];
}

export async function startSsServer(o: SsServerOptions): Promise<Peer & { port: number }> {
  const bin = requirePeer('ss-server');
  const port = o.port ?? (await freePort());
  const args = [
    '-s',
    '127.0.0.1',
    '-p',
    String(port),
    '-k',
    o.password,
    '-m',
    o.method,
    '-t',
    String(o.timeout ?? 60),
    ...(o.extraArgs ?? []),
  ];
  const p = await spawnPeer('ss-server', bin, args, { waitPort: port });
  return Object.assign(p, { port });
}

export interface SsLocalOptions {
  method: Method;
  password: string;
  serverPort: number;
  serverHost?: string;
  localPort?: number;
  timeout?: number;
  extraArgs?: string[];
}

export async function startSsLocal(o: SsLocalOptions): Promise<Peer & { socksPort: number }> {
  const bin = requirePeer('ss-local');
  const socksPort = o.localPort ?? (await freePort());
  const args = [
    '-s',
    o.serverHost ?? '127.0.0.1',
    '-p',
    String(o.serverPort),
    '-b',
    '127.0.0.1',
    '-l',
    String(socksPort),
    '-k',
    o.password,
    '-m',
    o.method,
    '-t',
    String(o.timeout ?? 60),
    ...(o.extraArgs ?? []),
  ];
  const p = await spawnPeer('ss-local', bin, args, { waitPort: socksPort });
  return Object.assign(p, { socksPort });
}

/** SIP002 URL for a SIP004 key: ss://base64url(method:password)@host:port */
export function ssUrl(method: string, password: string, host: string, port: number, tag?: string): string {
  const user = Buffer.from(`${method}:${password}`).toString('base64url');
  return `ss://${user}@${host}:${port}${tag ? `#${encodeURIComponent(tag)}` : ''}`;
}

export interface LadderSpawnOptions {
  /** Extra node flags placed before the entry script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Entry script instead of bin/ladder.js (e.g. a compiled cli/main.js). */
  entry?: string;
}

export interface LadderServerOptions extends LadderSpawnOptions {
  /** With --method/--password (one key); omit both when `config` gives the keys. */
  method?: Method;
  password?: string;
  port?: number;
  /** Path of a config file (passed as --config; --port, --host, --allow-private still apply). */
  config?: string;
  extraArgs?: string[];
}

/**
 * The arguments after `node` for an unmanaged `ladder server` on 127.0.0.1:`port` with one key
 * (--method/--password when given), then `extra`: what the tests and the benches start.
 */
export function ladderServerArgv(o: {
  port: number;
  entry?: string | undefined;
  method?: string | undefined;
  password?: string | undefined;
  extra?: readonly string[];
}): string[] {
  return [
    o.entry ?? LADDER_BIN,
    'server',
    '--host',
    '127.0.0.1',
    '--port',
    String(o.port),
    ...(o.method !== undefined ? ['--method', o.method] : []),
    ...(o.password !== undefined ? ['--password', o.password] : []),
    ...(o.extra ?? []),
  ];
}

/**
 * `ladder server --data-dir DIR` (managed) after bin/ladder.js: Shadowsocks on 127.0.0.1:`port`,
 * the management API and the metrics on free loopback ports.
 */
export async function managedServerArgv(
  dir: string,
  port: number,
  extra: readonly string[] = [],
): Promise<string[]> {
  return [
    'server',
    '--data-dir',
    dir,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--api-host',
    '127.0.0.1',
    '--api-port',
    String(await freePort()),
    '--metrics-port',
    String(await freePort()),
    ...extra,
  ];
}

/** `ladder server` through the CLI, on 127.0.0.1, allowed to reach loopback destinations. */
export async function startLadderServer(o: LadderServerOptions): Promise<Peer & { port: number }> {
  const port = o.port ?? (await freePort());
  const args = [
    ...(o.nodeArgs ?? []),
    ...ladderServerArgv({
      port,
      entry: o.entry,
      method: o.method,
      password: o.password,
      extra: ['--allow-private', ...(o.config ? ['--config', o.config] : []), ...(o.extraArgs ?? [])],
    }),
  ];
  const p = await spawnPeer('ladder server', process.execPath, args, {
    waitPort: port,
    ...(o.env ? { env: o.env } : {}),
    waitTimeoutMs: 30_000,
  });
  return Object.assign(p, { port });
}

export interface LadderClientOptions extends LadderSpawnOptions {
  key: string;
  socksPort?: number;
  extraArgs?: string[];
}

/** `ladder client --key … --socks 127.0.0.1:PORT` through the CLI. */
export async function startLadderClient(o: LadderClientOptions): Promise<Peer & { socksPort: number }> {
  const socksPort = o.socksPort ?? (await freePort());
  const args = [
    ...(o.nodeArgs ?? []),
    o.entry ?? LADDER_BIN,
    'client',
    '--key',
    o.key,
    '--socks',
    `127.0.0.1:${socksPort}`,
    ...(o.extraArgs ?? []),
  ];
  const p = await spawnPeer('ladder client', process.execPath, args, {
    waitPort: socksPort,
    ...(o.env ? { env: o.env } : {}),
    waitTimeoutMs: 30_000,
  });
  return Object.assign(p, { socksPort });
}

/** Resident set size of a process in KiB, from /proc/PID/status VmRSS (Linux only). */
export async function rssKiB(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/**
 * CPU time (user + system, all threads) a process has used so far, in ms, from /proc/PID/stat
 * (clock ticks of 10 ms on Linux with CLK_TCK=100).
 */
export async function cpuMs(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) * 10;
}
