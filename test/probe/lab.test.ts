/**
 * The probe against the censor lab: every site blocked by C1, C2, C3, C4 or C12 (a block page) is classified with its
 * mechanism and every open site is accessible (a diagonal confusion matrix on the deterministic
 * profile), with the control through a Ladder server in the lab world; with the censor off, the
 * same list is all accessible (negative control).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { probeList } from '../../src/probe/run.js';
import { assertLoopback } from '../../src/lab/world.js';
import { startProbeLab, type ProbeLab } from './lab-sites.js';

const loopbackOnly = (ip: string): boolean => {
  try {
    assertLoopback(ip);
    return true;
  } catch {
    return false;
  }
};

async function run(lab: ProbeLab) {
  return probeList(
    lab.sites.map((s) => ({ url: s.url, category: 'LAB' })),
    {
      dns: lab.resolver,
      control: { dialer: lab.dialer, resolver: lab.controlResolver },
      tls: { ca: lab.ca },
      timeoutMs: 1500,
      allowAddress: loopbackOnly,
      concurrency: 4,
    },
  );
}

test('lab: blocked sites are classified by mechanism, open sites accessible (confusion matrix diagonal)', async () => {
  const lab = await startProbeLab({ censor: true });
  try {
    const results = await run(lab);
    const matrix = new Map<string, number>();
    for (const [i, r] of results.entries()) {
      const want = String(lab.sites[i]!.expect || 'accessible');
      const got = String(r.keys.blocking || (r.keys.blocking === null ? 'null' : 'accessible'));
      matrix.set(`${want} -> ${got}`, (matrix.get(`${want} -> ${got}`) ?? 0) + 1);
    }
    const off = [...matrix].filter(([k]) => k.split(' -> ')[0] !== k.split(' -> ')[1]);
    assert.deepEqual(off, [], `off-diagonal: ${JSON.stringify([...matrix])}`);
    for (const [i, r] of results.entries()) {
      const s = lab.sites[i]!;
      if (s.expect === 'dns') {
        assert.ok(r.keys.x_unexpected_answers.length > 0, 'the forged answers are reported');
        for (const a of r.keys.x_unexpected_answers)
          assert.ok(lab.world.censor.isForgedAddress(a), `${a} is forged`);
      }
      if (s.expect === false) assert.equal(r.keys.accessible, true);
      if (s.expect === 'http-diff') {
        // The block page arrived instead of the page: a 403 against the control's 200.
        assert.equal(r.keys.requests.at(-1)?.response?.code, 403);
        assert.match(r.keys.requests.at(-1)?.response?.body ?? '', /lab block page/);
        assert.equal(r.keys.status_code_match, false);
      }
    }
    // The censor really acted on each blocked site (the probe did not invent a verdict).
    for (const b of ['C1', 'C2', 'C3', 'C4', 'C12'] as const)
      assert.ok(
        lab.world.log.filter({ behaviour: b }).some((d) => d.action !== 'PASS'),
        `${b} acted`,
      );
  } finally {
    await lab.stop();
  }
});

test('lab negative control: with the censor off, every site of the same list is accessible', async () => {
  const lab = await startProbeLab({ censor: false });
  try {
    const results = await run(lab);
    assert.deepEqual(
      results.map((r) => [r.input, r.keys.blocking]),
      lab.sites.map((s) => [s.url, false]),
    );
  } finally {
    await lab.stop();
  }
});
