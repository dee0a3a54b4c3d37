// One-shot runs of the real CLI (`node bin/ladder.js …`) for tests of what a person sees:
// exit code, stdout, stderr and how long it took.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { ladderCommand } from '../../src/shared/invocation.js';
import { LADDER_BIN } from './peers.js';
import { cleanEnv } from './clean-env.js';

export { cleanEnv } from './clean-env.js';

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
  const env = cleanEnv({ LADDER_LOG_LEVEL: 'silent' });
  return runProgram(process.execPath, [LADDER_BIN, ...args], env, o);
}

/** Run `file ARGS` with `env` to completion (runLadder; `npm …` for the npm scripts' own runs). */
export function runProgram(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  o: LadderRunOptions = {},
): Promise<LadderRun> {
  const start = Date.now();
  return new Promise((resolve) => {
    const child = spawn(file, args, { cwd: o.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
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

/**
 * `— see ladder PATH --help$` as a regular expression's source, with the command as ladder names
 * it when run from `cwd` (`npx ladder` in the checkout, `node …/bin/ladder.js` elsewhere).
 */
export function seeHelp(path: string, cwd: string = process.cwd()): string {
  const cmd = [ladderCommand(process.env, cwd), path, '--help'].filter(Boolean).join(' ');
  return `— see ${escapeRe(cmd)}$`;
}

/** `s` matched literally in a regular expression. */
export function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A refusal: exit 2, nothing on stdout, exactly one stderr line matching `re`. */
export function oneUsageLine(r: LadderRun, what: string, re: RegExp): void {
  assert.equal(r.code, 2, `${what}: exit code; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '', what);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
  assert.match(lines[0]!, re, what);
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
