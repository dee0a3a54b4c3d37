/** `ladder lab run`: flags, JSON output, and clear errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_FINDINGS, labExitCode } from '../../src/cli/commands/lab.js';
import { cleanEnv } from '../helpers/clean-env.js';
import { which } from '../helpers/peers.js';
import { requireOrSkip } from '../helpers/prereq.js';

const ladder = (args: string[]) =>
  spawnSync(process.execPath, ['bin/ladder.js', ...args], {
    encoding: 'utf8',
    env: cleanEnv(),
    timeout: 120_000,
  });

test('lab run --json --only: the report as data, and the decision log as JSON lines', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-lab-cli-'));
  try {
    const file = join(dir, 'decisions.jsonl');
    const r = ladder(['lab', 'run', '--only', 'open site', '--json', '--seed', '3', '--decisions', file]);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as {
      profile: string;
      seed: number;
      contenders: Array<{ name: string; requests: { ok: number; total: number } }>;
    };
    assert.equal(report.profile, 'lab-det');
    assert.equal(report.seed, 3);
    assert.deepEqual(
      report.contenders.map((c) => [c.name, c.requests.ok, c.requests.total]),
      [['direct -> open site', 5, 5]],
    );
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { behaviour: string; action: string });
    assert.ok(lines.some((d) => d.behaviour === 'C3' && d.action === 'PASS'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lab run --only, repeated: whole names, any case, each picked once', () => {
  const r = ladder([
    'lab',
    'run',
    '--only',
    'direct -> open site',
    '--only',
    'DIRECT -> BLOCKED SITE',
    '--json',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { contenders: Array<{ name: string }> };
  assert.deepEqual(
    report.contenders.map((c) => c.name),
    ['direct -> blocked site', 'direct -> open site'],
  );
});

test('lab run --verbose: a table of at most 120 columns in plain words, a legend, then the details', () => {
  const r = ladder(['lab', 'run', '--only', 'open site', '--seed', '3', '--verbose']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], 'Ladder censor lab: profile lab-det, seed 3, clock x20');
  assert.match(lines[2]!, /^contender\s+requests ok\s+censor hits\s+active prober\s+after$/);
  assert.match(lines[4]!, /^direct -> open site\s+5\/5\s+-\s+-\s+ok$/);
  for (const l of lines.slice(0, lines.indexOf('Details:')))
    assert.ok(l.length <= 120, `${l.length} columns: ${l}`);
  assert.match(r.stdout, /censor hits +what the emulated censor did/);
  assert.match(r.stdout, /docs\/glossary\.md.*docs\/lab\.md/);
  assert.match(
    r.stdout,
    /Details:\ndirect -> open site: control: the same workload to www\.open\.lab\n {2}steps: dns A=OK, /,
  );
  assert.match(r.stdout, / {2}blocked by: -; C6 triggers 0; residual hits 0; endpoint blocked \(C1\) no\n/);
  assert.match(r.stdout, /Notes:/);
});

test('lab run: an unknown profile or a bad flag is a one-line usage error (exit 2)', () => {
  const p = ladder(['lab', 'run', '--profile', 'gfw-1999']);
  assert.equal(p.status, 2, p.stderr);
  assert.match(p.stderr, /unknown lab profile "gfw-1999" \(known: none, /);
  const s = ladder(['lab', 'run', '--seed', 'abc']);
  assert.equal(s.status, 2, s.stderr);
  assert.match(s.stderr, /--seed must be an integer/);
  const o = ladder(['lab', 'run', '--only', 'nothing-matches']);
  assert.equal(o.status, 2, o.stderr);
  assert.match(
    o.stderr,
    /--only "nothing-matches" matches no contender; the names: "direct -> blocked site", /,
  );
  assert.equal(o.stderr.split('\n').length, 2, 'one line');
});

test('lab run --decisions: a path whose directory does not exist is refused before the run (exit 2)', () => {
  const t0 = Date.now();
  const r = ladder(['lab', 'run', '--only', 'open site', '--decisions', '/nonexistent/dir/x.jsonl']);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(
    r.stderr,
    'ladder: --decisions /nonexistent/dir/x.jsonl: its directory /nonexistent/dir: does not exist\n',
  );
  assert.equal(r.stdout, '', 'no lab was run');
  assert.ok(Date.now() - t0 < 60_000);
});

test('lab run --decisions: a write that fails after the run is one line, and the table is still printed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-lab-cli-'));
  const file = join(dir, 'decisions.jsonl');
  const child = spawn(
    process.execPath,
    ['bin/ladder.js', 'lab', 'run', '--only', 'open site', '--seed', '3', '--decisions', file],
    { env: cleanEnv() },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    // The path was checked before the run; now its directory goes away.
    if (stderr.includes('lab: phase 1')) rmSync(dir, { recursive: true, force: true });
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  rmSync(dir, { recursive: true, force: true });
  assert.ok(stderr.includes('lab: phase 1'), stderr);
  assert.equal(code, 2, stderr);
  assert.match(stdout, /\ndirect -> open site\s+5\/5\s+-\s+-\s+ok\n/);
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.at(-1), `ladder: ${file}: no such file`);
  assert.doesNotMatch(stderr, /unexpected error|ENOENT/);
  assert.equal(existsSync(dir), false);
});

test('lab run: findings exit with 3, documented in --help, not 1 (a bug in ladder) or 2 (usage)', () => {
  assert.equal(EXIT_FINDINGS, 3);
  assert.equal(
    labExitCode({ findings: ["tunnel-core bug: the prober classified Ladder's server as a proxy"] }),
    3,
  );
  // Control: a run without findings exits 0 (the runs above check it end to end).
  assert.equal(labExitCode({ findings: [] }), 0);
  const h = ladder(['lab', 'run', '--help']);
  assert.equal(h.status, 0, h.stderr);
  assert.match(
    h.stdout.replace(/\s+/g, ' '),
    /Exit codes: 0 .*; 3 the lab found a defence that failed .*; 1 a bug in ladder\./,
  );
});

/** The live children of `pid` (every thread's list), as /proc tells them. */
function childrenOf(pid: number): number[] {
  const tasks = `/proc/${pid}/task`;
  if (!existsSync(tasks)) return [];
  const out: number[] = [];
  for (const tid of readdirSync(tasks)) {
    try {
      out.push(
        ...readFileSync(`${tasks}/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
      );
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

test('lab run ended by a signal ends the ss-server and ss-local it started (they were left running)', async (t) => {
  if (
    !requireOrSkip(
      t,
      which('ss-server') !== undefined && which('ss-local') !== undefined,
      'shadowsocks-libev',
    )
  )
    return;
  const child = spawn(process.execPath, ['bin/ladder.js', 'lab', 'run', '--only', 'shadowsocks-libev'], {
    env: cleanEnv(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let peers: number[] = [];
  t.after(() => {
    child.kill('SIGKILL');
    for (const p of peers.filter(running)) process.kill(p, 'SIGKILL'); // whatever the outcome
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + 60_000;
  while (peers.length < 2 && Date.now() < deadline && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 100));
    peers = childrenOf(child.pid!).filter((p) => /^ss-(server|local)$/.test(readComm(p)));
  }
  assert.equal(peers.length, 2, 'ss-server and ss-local were started');
  child.kill('SIGTERM');
  assert.equal(await exited, 143);
  const until = Date.now() + 5000;
  while (peers.some(running) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(peers.filter(running), [], 'peers still running after the lab ended');
});

function readComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}
