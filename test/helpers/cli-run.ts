import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';
import { cleanEnv } from './clean-env.js';

const BIN = fileURLToPath(new URL('../../bin/ladder.js', import.meta.url));

export interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

/** `ladder ARGS` from the sources, stdout and stderr piped (not a terminal), without LADDER_* from the caller. */
export function run(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Run {
  const env = cleanEnv({ ...opts.env });
  if (!opts.env?.LADDER_LOG_LEVEL) delete env.LADDER_LOG_LEVEL;
  const child = spawn(process.execPath, [BIN, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

/** The first match of `re` in the process's stdout; fails at once if the process exits first. */
export function waitForStdout(r: Run, re: RegExp, ms = 20_000): Promise<RegExpExecArray> {
  const message = (): string => `${re} in stdout: ${r.stdout()} / stderr: ${r.stderr()}`;
  return waitFor(
    () => {
      const m = re.exec(r.stdout());
      if (!m && r.child.exitCode !== null) throw new Error(`exited; no ${message()}`);
      return m;
    },
    { timeoutMs: ms, intervalMs: 50, message },
  );
}

/**
 * `ladder server` unmanaged on loopback with a web front on a free port, plus `extra`; with
 * --show-urls, as the tests read the key URLs from its output (not a terminal).
 */
export function unmanagedWeb(password: string, ...extra: string[]): string[] {
  return [
    'server',
    '--show-urls',
    '--password',
    password,
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--web-port',
    '0',
    '--web-host',
    '127.0.0.1',
    '--public-host',
    '127.0.0.1',
    ...extra,
  ];
}

/**
 * `ladder client --key KEY` as a user runs it: `bytes` random bytes echoed full-duplex through its
 * SOCKS5 port to 127.0.0.1:`echoPort`, compared by hash (throws with the client's output when they
 * differ); resolves with its stdout (the banner). The client is killed after.
 */
export async function echoThroughCliClient(
  key: string,
  echoPort: number,
  bytes: number,
  env?: NodeJS.ProcessEnv,
): Promise<string> {
  const { randomBytes } = await import('node:crypto');
  const { echoVia } = await import('./transfer.js');
  const c = run(['client', '--key', key, '--socks', '127.0.0.1:0'], env ? { env } : {});
  try {
    const m = await waitForStdout(c, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/, 30_000);
    const body = randomBytes(bytes);
    const r = await echoVia({ proxyPort: Number(m[1]) }, { host: '127.0.0.1', port: echoPort }, body);
    if (!r.gotSha.equals(r.sentSha)) throw new Error(`echo differs\n${c.stdout()}${c.stderr()}`);
    return c.stdout();
  } finally {
    c.child.kill('SIGKILL');
  }
}
