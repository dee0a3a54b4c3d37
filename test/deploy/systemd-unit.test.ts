/**
 * deploy/ladder.service is a unit systemd accepts and a sandbox it rates well: `systemd-analyze
 * verify` (every directive known, the command executable) and `systemd-analyze security
 * --offline` (the exposure score, 0 = locked down … 10 = exposed). The unit's ExecStart names
 * the installed `ladder`; here it is pointed at this checkout's bin/ladder.js so verify can check
 * the command exists. Negative controls: a misspelt directive is reported, and a unit without the
 * sandbox scores as exposed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { LADDER_BIN, REPO_ROOT, which } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';

const run = promisify(execFile);
const analyze = which('systemd-analyze');
const UNIT = readFileSync(join(REPO_ROOT, 'deploy', 'ladder.service'), 'utf8');
const tmp = mkdtempSync(join(tmpdir(), 'ladder-unit-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The unit with ExecStart on this checkout, written as NAME.service; its path. */
function unitFile(name: string, text = UNIT): string {
  const local = text.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath} ${LADDER_BIN}`);
  assert.notEqual(local, text, 'the unit has an ExecStart line');
  const path = join(tmp, `${name}.service`);
  writeFileSync(path, local);
  return path;
}

async function verify(path: string): Promise<string> {
  const r = await run(analyze!, ['verify', '--man=no', path], { cwd: tmp }).catch(
    (err: { stdout?: string; stderr?: string }) => ({
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? 'failed',
    }),
  );
  return `${r.stdout}${r.stderr}`.trim();
}

async function exposure(path: string): Promise<number> {
  const r = await run(analyze!, ['security', '--offline=true', path], { cwd: tmp });
  const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout);
  assert.ok(m, `an exposure score in: ${r.stdout.slice(-300)}`);
  return Number(m[1]);
}

describe(
  'deploy/ladder.service',
  { skip: skipUnless(analyze !== undefined, 'systemd-analyze not installed (apt install systemd)') },
  () => {
    test('systemd-analyze verify accepts it without a warning', async () => {
      assert.equal(await verify(unitFile('ladder')), '');
    });

    test('a misspelt directive is reported (negative control for the check above)', async () => {
      const out = await verify(unitFile('typo', UNIT.replace('ProtectSystem=strict', 'ProtectSystm=strict')));
      assert.match(out, /Unknown key 'ProtectSystm'/);
    });

    test('the sandbox rates "OK" or better (exposure < 2.5), and the bare unit does not', async () => {
      const score = await exposure(unitFile('ladder'));
      assert.ok(score < 2.5, `exposure ${score}`);
      // The same service with only [Unit], ExecStart and [Install]: what the directives buy.
      const bare = UNIT.split('\n')
        .filter((l) => /^(\[|ExecStart=|Description=|WantedBy=|Type=)/.test(l))
        .join('\n');
      const bareScore = await exposure(unitFile('bare', bare));
      assert.ok(bareScore > 8, `bare exposure ${bareScore}`);
    });

    test('it keeps what node needs: no MemoryDenyWriteExecute (V8 JIT) and a writable state directory', () => {
      assert.doesNotMatch(UNIT, /^MemoryDenyWriteExecute=yes/m);
      assert.match(UNIT, /^StateDirectory=ladder$/m);
      // A bare name: systemd's search path has both /usr/local/bin and /usr/bin, where npm puts it.
      assert.match(UNIT, /^ExecStart=ladder server --data-dir \/var\/lib\/ladder$/m);
    });
  },
);
