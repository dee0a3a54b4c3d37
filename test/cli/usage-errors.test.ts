// Every `ladder` subcommand answers a mistyped option or subcommand the same way, through the
// real CLI: one line `ladder: unknown option '--x' (did you mean --y?) — see ladder PATH --help`,
// exit 2, nothing on stdout. The commands are read from the registrations themselves, so a new
// subcommand is covered without touching this file.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { commandTree } from '../helpers/command-tree.js';
import {
  runLadder,
  runProgram,
  seeHelp,
  cleanEnv,
  escapeRe as esc,
  oneUsageLine,
  type LadderRun,
} from '../helpers/ladder-run.js';
import { REPO_ROOT, which } from '../helpers/peers.js';
import { requireOrSkip } from '../helpers/prereq.js';

/** A long option of `cmd` with one letter dropped, which names no option of `cmd`. */
function typoOf(cmd: Command): { typo: string; meant: string } | undefined {
  const longs = cmd.options.map((o) => o.long).filter((l): l is string => l !== undefined);
  for (const meant of longs) {
    if (meant.length < 7 || meant.startsWith('--no-')) continue;
    const typo = meant.slice(0, -2) + meant.slice(-1);
    if (!longs.includes(typo)) return { typo, meant };
  }
  return undefined;
}

/** Run `jobs` with at most `n` at a time (the machine is shared: two cores). */
async function limited<T>(n: number, jobs: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = new Array<T>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: n }, worker));
  return results;
}

test('every subcommand: an unknown option or subcommand is one line with "did you mean" and its --help', async () => {
  const tree = await commandTree();
  assert.ok(tree.length >= 20, `only ${tree.length} commands found`);
  const cases: Array<{ args: string[]; re: RegExp }> = [];
  for (const { path, cmd } of tree) {
    const help = seeHelp(path.join(' '));
    cases.push({
      args: [...path, '--no-such-option'],
      re: new RegExp(`^ladder: unknown option '--no-such-option' ${help}`),
    });
    const t = typoOf(cmd);
    if (t)
      cases.push({
        args: [...path, t.typo],
        re: new RegExp(
          `^ladder: unknown option '${esc(t.typo)}' \\(did you mean ${esc(t.meant)}\\?\\) ${help}`,
        ),
      });
    const first = cmd.commands.map((c) => c.name()).find((n) => n.length >= 4);
    // `ladder server` has an action of its own too: commander takes the stray word for an argument.
    if (first) {
      const typo = first.slice(0, -2) + first.slice(-1);
      cases.push({
        args: [...path, typo],
        re: new RegExp(`^ladder: unknown command '${esc(typo)}' \\(did you mean ${esc(first)}\\?\\) ${help}`),
      });
    }
  }
  const runs = await limited(
    3,
    cases.map((c) => () => runLadder(c.args)),
  );
  cases.forEach((c, i) => oneUsageLine(runs[i]!, `ladder ${c.args.join(' ')}`, c.re));
  // The ones the stranger met, by name.
  const named = cases.map((c) => c.args.join(' '));
  for (const cmd of ['server', 'store', 'nodes', 'server access-config', 'server rotate-cert'])
    assert.ok(named.includes(`${cmd} --no-such-option`), cmd);
});

/**
 * `npm ARGS` in the checkout, as a person runs it (npm's own environment, not this test's).
 * `npm exec` installs the checkout into npm's npx cache as a `file:` link and runs its install
 * script there, i.e. node-gyp in this checkout: build/ disappears while it rebuilds, and every
 * suite running meanwhile found no addon (two CI runs failed nine client suites). So npm runs
 * with a cache of its own and no lifecycle scripts.
 */
async function npm(args: readonly string[]): Promise<LadderRun> {
  const cache = mkdtempSync(join(tmpdir(), 'ladder-npm-cache-'));
  const env = cleanEnv({
    LADDER_LOG_LEVEL: 'silent',
    npm_config_cache: cache,
    npm_config_ignore_scripts: 'true',
  });
  try {
    return await runProgram('npm', ['--silent', ...args], env, { cwd: REPO_ROOT });
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

test('a usage error names the help as the person ran ladder: npm start, npm run ladder, npx ladder', async (t) => {
  if (!requireOrSkip(t, which('npm') !== undefined, 'npm not on PATH')) return;
  const cases: Array<[string[], RegExp]> = [
    // npm start is `ladder server`: its subcommands follow the `--`.
    [['start', '--', '--bogus'], /^ladder: unknown option '--bogus' — see npm start -- --help$/],
    [
      ['start', '--', 'acces-config'],
      /^ladder: unknown command 'acces-config' \(did you mean access-config\?\) — see npm start -- --help$/,
    ],
    [
      ['start', '--', 'access-config', '--bogus'],
      /^ladder: unknown option '--bogus' — see npm start -- access-config --help$/,
    ],
    [
      ['run', 'ladder', '--', 'keys', 'lst'],
      /^ladder: unknown command 'lst' \(did you mean list\?\) — see npm run ladder -- keys --help$/,
    ],
    [
      ['exec', '--offline', '--', 'ladder', 'nodes', '--bogus'],
      /^ladder: unknown option '--bogus' — see npx ladder nodes --help$/,
    ],
    // npx puts a copy of the checkout on PATH for its run: the hint still says `npx ladder`.
    [
      [
        'exec',
        '--offline',
        '--',
        'ladder',
        'server',
        'access-config',
        '--data-dir',
        '/nonexistent-ladder-dir',
      ],
      /^ladder: no store at \S+: start the server once \(npx ladder server --data-dir/,
    ],
  ];
  const addon = join(REPO_ROOT, 'build', 'Release', 'ladder_aead.node');
  const builtAt = (): number | undefined => {
    try {
      return statSync(addon).mtimeMs;
    } catch {
      return undefined;
    }
  };
  const before = builtAt();
  for (const [args, re] of cases) oneUsageLine(await npm(args), `npm ${args.join(' ')}`, re);
  // None of it rebuilt the checkout's addon under the other suites' feet.
  assert.equal(builtAt(), before, 'npm exec rebuilt build/Release/ladder_aead.node');
});

test('client: a listen address in use names the address, why, and the setting to change, in one line', async () => {
  const { createServer } = await import('node:net');
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  try {
    const port = (holder.address() as { port: number }).port;
    const key = 'ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpwdw@127.0.0.1:9#k';
    const r = await runLadder(['client', '--key', key, '--socks', `127.0.0.1:${port}`], {
      killAfterMs: 30_000,
    });
    oneUsageLine(
      r,
      'client --socks in use',
      new RegExp(
        `^ladder: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE \\(another process listens there\\); choose another port with --socks$`,
      ),
    );
    const http = await runLadder(
      ['client', '--key', key, '--socks', '127.0.0.1:0', '--http', `127.0.0.1:${port}`],
      {
        killAfterMs: 30_000,
      },
    );
    oneUsageLine(
      http,
      'client --http in use',
      /: EADDRINUSE \(another process listens there\); choose another port with --http$/,
    );
  } finally {
    holder.close();
  }
});

test('server: two of its own listeners on one port are named, not "another process listens there"', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-ports-'));
  try {
    for (const [args, re] of [
      [
        ['server', '--password', 'pw', '--port', '18999', '--web-port', '18999'],
        /^ladder: --port and --web-port both name port 18999: /,
      ],
      [
        ['server', '--data-dir', dir, '--port', '18999', '--api-port', '18999', '--no-metrics'],
        /^ladder: --port and --api-port both name port 18999: /,
      ],
    ] as const) {
      oneUsageLine(await runLadder(args, { killAfterMs: 30_000 }), args.join(' '), re);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
