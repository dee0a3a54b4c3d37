/**
 * `ladder probe` end to end in the lab: a citizenlab CSV with an open site and a C3-blocked one,
 * the control through the lab's Ladder server given as an ss:// key; the summary as printed and
 * the JSON lines in OONI's measurement shape. Plain HTTP sites only: the CLI trusts the system
 * CA store, not the lab's, and C2's forged answers are public addresses it must not dial.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireOrSkip } from '../helpers/prereq.js';
import { startProbeLab } from './lab-sites.js';
import { cleanEnv } from '../helpers/clean-env.js';

const ladder = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/ladder.js', ...args],
      { encoding: 'utf8', env: cleanEnv({ LADDER_DIST: '0' }), timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });

const CHROMIUM = '/usr/bin/chromium';

/** The DOM after scripts ran, from headless Chromium (offline: the report loads nothing). */
const chromiumDom = (file: string): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--virtual-time-budget=2000',
        '--dump-dom',
        `file://${file}`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
  });

const ENVELOPE = [
  'annotations',
  'data_format_version',
  'input',
  'measurement_start_time',
  'probe_asn',
  'probe_cc',
  'probe_ip',
  'report_id',
  'resolver_asn',
  'resolver_ip',
  'software_name',
  'software_version',
  'test_keys',
  'test_name',
  'test_runtime',
  'test_start_time',
  'test_version',
];
const TEST_KEYS = [
  'accessible',
  'blocking',
  'body_length_match',
  'body_proportion',
  'control',
  'control_failure',
  'dns_consistency',
  'dns_experiment_failure',
  'headers_match',
  'http_experiment_failure',
  'queries',
  'requests',
  'status_code_match',
  'tcp_connect',
  'title_match',
  'tls_handshakes',
];

test('ladder probe: CSV list, control via an ss:// key, summary, OONI-shaped JSON lines, HTML report', async (t) => {
  const lab = await startProbeLab({
    censor: true,
    sites: [
      { name: 'www.news.open.lab', scheme: 'http', expect: false },
      { name: 'www.host.c3.lab', scheme: 'http', expect: 'http-failure' },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'ladder-probe-'));
  try {
    const [open, c3] = lab.sites;
    const csv = join(dir, 'list.csv');
    writeFileSync(
      csv,
      'url,category_code,category_description,date_added,source,notes\n' +
        `${open!.url},NEWS,News Media,2020-01-01,lab,"open, for the control"\n` +
        `${c3!.url},XED,Something new,2020-01-01,lab,\n`,
    );
    const key = `ss://${Buffer.from('chacha20-ietf-poly1305:probe-lab-password').toString('base64url')}@${lab.front.host}:${lab.front.port}`;
    const out = join(dir, 'm.jsonl');
    const html = join(dir, 'report.html');
    const r = await ladder([
      'probe',
      '--list',
      csv,
      '--via',
      key,
      '--dns',
      `${lab.resolver.host}:${lab.resolver.port}`,
      '--control-resolver',
      `${lab.controlResolver.host}:${lab.controlResolver.port}`,
      '--json',
      out,
      '--html',
      html,
      '--timeout',
      '3',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^1 of 2 blocked: 1 by HTTP failure\n/);
    assert.match(r.stdout, /\nNEWS +1 +0 +0 +0 +0 +0 +0 +1\n/);
    assert.match(r.stdout, /\nXED +0 +0 +0 +0 +1 +0 +0 +1\n/);
    assert.ok(r.stdout.endsWith(`\nBlocked or unknown:\n  http-failure  ${c3!.url}\n`), r.stdout);
    assert.equal(r.stderr, '', 'no progress line when stderr is not a terminal');
    assert.ok(!r.stdout.includes('probe-lab-password') && !r.stderr.includes('probe-lab-password'));
    const lines = readFileSync(out, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    for (const m of lines) {
      for (const k of ENVELOPE) assert.ok(k in m, `envelope field ${k}`);
      assert.equal(m.test_name, 'web_connectivity');
      assert.equal(m.software_name, 'ladder');
      assert.equal(m.probe_asn, 'AS0');
      assert.equal(m.probe_cc, 'ZZ');
      assert.match(String(m.measurement_start_time), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      const tk = m.test_keys as Record<string, unknown>;
      for (const k of TEST_KEYS) assert.ok(k in tk, `test_keys.${k}`);
      const q = (tk.queries as Array<Record<string, unknown>>)[0]!;
      assert.deepEqual(Object.keys(q).sort(), [
        'answers',
        'engine',
        'failure',
        'hostname',
        'query_type',
        'resolver_address',
        't',
      ]);
      const tcp = (tk.tcp_connect as Array<Record<string, unknown>>)[0]!;
      assert.deepEqual(Object.keys(tcp.status as object).sort(), ['blocked', 'failure', 'success']);
      const req = (tk.requests as Array<Record<string, unknown>>)[0]!;
      assert.ok('request' in req && 'response' in req && 'failure' in req);
      assert.ok('dns' in (tk.control as object) && 'http_request' in (tk.control as object));
    }
    assert.equal(lines[0]!.input, open!.url);
    assert.equal((lines[0]!.test_keys as { blocking: unknown }).blocking, false);
    assert.equal((lines[0]!.test_keys as { accessible: unknown }).accessible, true);
    assert.equal((lines[1]!.test_keys as { blocking: unknown }).blocking, 'http-failure');
    assert.deepEqual(lines[1]!.annotations, { category_code: 'XED', engine_name: 'ladder' });
    assert.equal(JSON.stringify(lines).includes('probe-lab-password'), false, 'no key in the output');
    // The HTML report renders in headless Chromium: its script ran over both rows, no error.
    const report = readFileSync(html, 'utf8');
    assert.ok(!report.includes('probe-lab-password'));
    assert.ok(!/(src|href)=["']?https?:/.test(report), 'self-contained: no external resources');
    if (requireOrSkip(t, existsSync(CHROMIUM), 'chromium (apt install chromium) to render the HTML report')) {
      const dom = await chromiumDom(html);
      assert.match(dom, /<body[^>]*data-ready="2"/);
      assert.doesNotMatch(dom, /data-error=/);
      assert.match(dom, /1 of 2 blocked: 1 by HTTP failure/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await lab.stop();
  }
});

test('ladder probe: a malformed list row is one line naming file and line; nothing is written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-probe-'));
  try {
    const csv = join(dir, 'bad.csv');
    writeFileSync(
      csv,
      'url,category_code,category_description,date_added,source,notes\nhttps://a.example/,NEWS,x\n',
    );
    const out = join(dir, 'm.jsonl');
    const r = await ladder(['probe', '--list', csv, '--json', out]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `ladder: ${csv}:2: 3 fields where the header has 6\n`);
    assert.equal(existsSync(out), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
