import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ESLint } from 'eslint';
// @ts-expect-error -- plain JS config module without types
import { ALLOWED } from '../../eslint.config.js';

// Proves the dependency-direction lint rules fire: for every folder, an import from a folder it
// may not depend on is an error, and an import from an allowed folder is not.
const FOLDERS = ['protocol', 'transport', 'server', 'client', 'store', 'api', 'metrics', 'config', 'lab', 'probe', 'cli', 'shared'];
// The probe files do not exist on disk, so type-aware parsing is off and only this rule runs.
const eslint = new ESLint({
  cwd: process.cwd(),
  overrideConfig: { languageOptions: { parserOptions: { projectService: false, project: null } } },
  ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
});

async function restrictedMessages(dir: string, code: string): Promise<string[]> {
  const results = await eslint.lintText(code, { filePath: `src/${dir}/__zone_probe__.ts` });
  const messages = results.flatMap((r) => r.messages);
  const fatal = messages.find((m) => m.fatal);
  if (fatal) throw new Error(`eslint could not lint the probe: ${fatal.message}`);
  return messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const allowed = ALLOWED as Record<string, string[]>;
for (const [dir, ok] of Object.entries(allowed)) {
  test(`lint zone: src/${dir}`, async () => {
    for (const other of FOLDERS) {
      if (other === dir) continue;
      const msgs = await restrictedMessages(dir, `import { x } from '../${other}/thing.js';\nexport const y = x;\n`);
      if (ok.includes(other)) assert.equal(msgs.length, 0, `${dir} -> ${other} should be allowed`);
      else assert.equal(msgs.length, 1, `${dir} -> ${other} should be refused`);
    }
  });
}

test('lint zone: src/protocol stays pure (no sockets, files or logging)', async () => {
  for (const imp of [`import { readFileSync } from 'node:fs';`, `import { connect } from 'node:net';`, `import { pino } from 'pino';`]) {
    const msgs = await restrictedMessages('protocol', `${imp}\nexport const z = 1;\n`);
    assert.equal(msgs.length, 1, imp);
  }
  assert.equal((await restrictedMessages('protocol', `import { isIPv4 } from 'node:net';\nexport const z = isIPv4;\n`)).length, 0);
});
