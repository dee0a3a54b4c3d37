// One-shot runs of the real CLI (`node bin/ladder.js …`) for tests of what a person sees:
// exit code, stdout, stderr and how long it took.
import { spawn } from 'node:child_process';
import { LADDER_BIN } from './peers.js';

export interface LadderRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface LadderRunOptions {
  cwd?: string;
  /** SIGKILL after this long (the run then reports code -1). */
  killAfterMs?: number;
  /** Written to its standard input, which is then closed (default: closed at once, empty). */
  stdin?: string;
}

/** Run `ladder ARGS` from the sources with logs silenced, to completion. */
export function runLadder(args: readonly string[], o: LadderRunOptions = {}): Promise<LadderRun> {
  const start = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [LADDER_BIN, ...args], {
      cwd: o.cwd,
      env: { ...process.env, LADDER_FROM_SOURCE: '1', LADDER_LOG_LEVEL: 'silent' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdin.end(o.stdin ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.killAfterMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - start });
    });
  });
}

/** `ladder server` in managed mode on loopback, every port chosen by the system, no metrics. */
export function managedServerArgs(dataDir: string): string[] {
  return ['server', '--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0'].concat([
    '--api-host',
    '127.0.0.1',
    '--api-port',
    '0',
    '--no-metrics',
  ]);
}
