/** The client banner's routing line counts rules in words a person reads: "1 rule", "2 rules". */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { run, waitForStdout } from '../helpers/cli-run.js';

const KEY = formatSsUrl({ method: 'aes-256-gcm', password: 'banner-pw', host: '127.0.0.1', port: 9 });

test('banner: "1 rule from", "2 rules from"', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-banner-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [lines, want] of [
    [['domain-suffix,blocked.example,proxy'], '1 rule from one.txt'],
    [['domain-suffix,blocked.example,proxy', 'ip-cidr,10.0.0.0/8,direct'], '2 rules from one.txt'],
  ] as const) {
    writeFileSync(join(dir, 'one.txt'), `${lines.join('\n')}\n`);
    const r = run(['client', '--key', KEY, '--socks', '127.0.0.1:0', '--rules', 'one.txt'], { cwd: dir });
    try {
      const [line] = await waitForStdout(r, /routing {6}[^\n]*/);
      assert.ok(line.includes(`, ${want}`), line);
    } finally {
      r.child.kill('SIGTERM');
      await r.exit;
    }
  }
});

test('banner: shaping turned off by the config file names its field, not --no-shape', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-banner-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ keys: [KEY], shape: false }));
  for (const [args, want] of [
    [['--config', 'c.json'], 'first-packet shaping off (c.json: "shape")'],
    [['--config', 'c.json', '--no-shape'], 'first-packet shaping off (--no-shape)'],
  ] as const) {
    const r = run(['client', '--socks', '127.0.0.1:0', ...args], { cwd: dir });
    try {
      const [line] = await waitForStdout(r, /ladder client: [^\n]*/);
      assert.ok(line.includes(want), line);
    } finally {
      r.child.kill('SIGTERM');
      await r.exit;
    }
  }
});
