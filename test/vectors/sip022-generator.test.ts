// Re-runs the SIP022 vector generator embedded in docs/sip022.md (python3 with `cryptography`, a
// child process) and checks it reproduces test/vectors/sip022.json; the vectors themselves are
// checked against the codec in src/protocol/shadowsocks/aead2022.test.ts.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { requireOrSkip } from '../helpers/prereq.js';

describe('SIP022 TCP known-answer vectors', () => {
  it('the generator embedded in docs/sip022.md reproduces test/vectors/sip022.json byte for byte', (t) => {
    const doc = readFileSync(new URL('../../docs/sip022.md', import.meta.url), 'utf8');
    const m = /```python sip022-gen\n([\s\S]*?)\n```/.exec(doc);
    assert.ok(m, 'docs/sip022.md has a ```python sip022-gen block');
    const probe = spawnSync('python3', ['-c', 'import cryptography'], { encoding: 'utf8' });
    const what = 'python3 with the cryptography module is missing: cannot re-run the SIP022 vector generator';
    if (!requireOrSkip(t, probe.status === 0, what)) return;
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const run = spawnSync('python3', ['-'], { input: m[1], cwd: root, encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, readFileSync(new URL('./sip022.json', import.meta.url), 'utf8'));
  });
});
