import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tryItHeading } from './banner-text.js';

test('tryItHeading: `npx ladder` and `node …/ladder.js` are not sent to the client machine as they are', () => {
  // `ladder` on PATH: the same command works wherever Ladder is installed.
  assert.equal(tryItHeading('ladder', false), 'Try it (on the client machine):');
  assert.equal(tryItHeading('ladder', true), 'Try it (on the client machine, or on this one):');
  // Outside a checkout `npx ladder` fetches an unrelated npm package: say where the line works.
  for (const form of ['npx ladder', 'node /opt/ladder/bin/ladder.js'])
    for (const allow of [false, true])
      assert.equal(
        tryItHeading(form, allow),
        'Try it (here, or on the client machine from its own checkout of Ladder):',
      );
});
