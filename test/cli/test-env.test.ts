/**
 * The ladder processes tests spawn never inherit the developer's LADDER_STORE, LADDER_API,
 * LADDER_KEY, LADDER_AUTH or LADDER_PASSWORD: with LADDER_STORE=postgres://…prod… exported, a test
 * would otherwise write its keys there. Both spawn helpers (runLadder, cli-run's run) are checked
 * with targets that would answer differently: an unreachable PostgreSQL store and API.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CALLER_TARGETS, cleanEnv } from '../helpers/clean-env.js';
import { runLadder } from '../helpers/ladder-run.js';
import { run } from '../helpers/cli-run.js';

const EXPORTED = {
  LADDER_STORE: 'postgres://ladder:pw@127.0.0.1:1/prod',
  LADDER_API: 'https://127.0.0.1:1/prod-secret',
  LADDER_KEY: 'ss://YWVzLTEyOC1nY206cHc@127.0.0.1:1',
  LADDER_AUTH: 'u:p',
  LADDER_PASSWORD: 'prod-password',
};

test("spawned ladder processes do not see the developer's store, API or secrets", async (t) => {
  const saved = Object.fromEntries(CALLER_TARGETS.map((k) => [k, process.env[k]]));
  Object.assign(process.env, EXPORTED);
  const dir = mkdtempSync(join(tmpdir(), 'ladder-test-env-'));
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const env = cleanEnv({ LADDER_LOG_LEVEL: 'silent' });
  for (const k of Object.keys(EXPORTED)) assert.equal(env[k], undefined, k);
  assert.equal(cleanEnv({ LADDER_STORE: 'sqlite:x' }).LADDER_STORE, 'sqlite:x', "a test's own value is kept");

  // With LADDER_STORE honoured, `nodes list` would try the PostgreSQL store (connection refused).
  const nodes = await runLadder(['nodes', 'list'], { cwd: dir });
  assert.equal(nodes.code, 2, nodes.stderr);
  assert.match(nodes.stderr, /fleet nodes live in a PostgreSQL store/);
  // With LADDER_API honoured, `keys list` would call the API; here it looks for ./.ladder.
  const r = run(['keys', 'list'], { cwd: dir });
  assert.equal(await r.exit, 2, r.stderr());
  assert.match(r.stderr(), /no (key )?store/i);
  assert.doesNotMatch(r.stderr(), /127\.0\.0\.1:1|ECONNREFUSED/);
});
