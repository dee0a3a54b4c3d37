import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { ESLint } from 'eslint';
// @ts-expect-error -- plain JS config module without types
import { ALLOWED } from '../../eslint.config.js';

// Proves the dependency-direction lint rules fire: for every folder, an import from a folder it
// may not depend on is an error, and an import from an allowed folder is not. Every folder of
// src/ must be a zone (cli alone composes everything), and so must probe/, which has no files yet:
// its rule is proved on a virtual file like every other.
const SRC_DIRS = readdirSync(new URL('../../src/', import.meta.url), { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name);
const FOLDERS = [
  ...new Set([
    ...[
      'protocol',
      'transport',
      'server',
      'client',
      'store',
      'api',
      'metrics',
      'config',
      'lab',
      'probe',
      'cli',
      'shared',
    ],
    ...SRC_DIRS,
  ]),
];
// The probe files do not exist on disk, so type-aware parsing is off and only this rule runs.
const eslint = new ESLint({
  cwd: process.cwd(),
  overrideConfig: { languageOptions: { parserOptions: { projectService: false, project: null } } },
  ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
});

async function restrictedMessages(dir: string, code: string, file = '__zone_probe__.ts'): Promise<string[]> {
  const results = await eslint.lintText(code, { filePath: `src/${dir}/${file}` });
  const messages = results.flatMap((r) => r.messages);
  const fatal = messages.find((m) => m.fatal);
  if (fatal) throw new Error(`eslint could not lint the probe: ${fatal.message}`);
  return messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

/** How many zone errors a file in src/<dir>/ importing `specifier` gets. */
async function refusals(dir: string, specifier: string, file?: string): Promise<number> {
  return (await restrictedMessages(dir, `import { x } from '${specifier}';\nexport const y = x;\n`, file))
    .length;
}

const allowed = ALLOWED as Record<string, string[]>;

test('every folder of src/ is a lint zone (cli composes), and probe/ is one before it exists', () => {
  for (const d of FOLDERS)
    if (d !== 'cli') assert.ok(d in allowed, `src/${d} has no zone in eslint.config.js ALLOWED`);
  assert.ok('probe' in allowed, 'the probe zone is declared');
  assert.ok(!('cli' in allowed), 'cli composes everything: no zone');
  for (const [dir, ok] of Object.entries(allowed))
    for (const o of ok) assert.ok(FOLDERS.includes(o) && o !== dir, `${dir} allows unknown folder ${o}`);
});
for (const [dir, ok] of Object.entries(allowed)) {
  test(`lint zone: src/${dir}`, async () => {
    for (const other of FOLDERS) {
      if (other === dir) continue;
      const n = await refusals(dir, `../${other}/thing.js`);
      if (ok.includes(other)) assert.equal(n, 0, `${dir} -> ${other} should be allowed`);
      else assert.equal(n, 1, `${dir} -> ${other} should be refused`);
    }
  });
}

test('lint zone: a file in a subfolder is held to its zone (the rule counts any depth of ../)', async () => {
  for (const [dir, file] of [
    ['protocol', 'shadowsocks/__zone_probe__.ts'],
    ['probe', 'deep/er/__zone_probe__.ts'],
    ['client', 'routing/__zone_probe__.ts'],
  ] as const) {
    const up = '../'.repeat(file.split('/').length);
    assert.equal(await refusals(dir, `${up}server/thing.js`, file), 1, `${dir}/${file} -> server`);
    assert.equal(await refusals(dir, `${up}protocol/thing.js`, file), 0, `${dir}/${file} -> protocol`);
  }
});

test('lint zone: src/protocol stays pure (no sockets, files, processes, timers or logging)', async () => {
  for (const imp of [
    `import { readFileSync } from 'node:fs';`,
    `import { readFile } from 'node:fs/promises';`,
    `import { createSocket } from 'node:dgram';`,
    `import { connect } from 'node:tls';`,
    `import { request } from 'node:http';`,
    `import { request } from 'node:https';`,
    `import { spawn } from 'node:child_process';`,
    `import { setTimeout } from 'node:timers';`,
    `import { connect } from 'node:net';`,
    `import { createServer } from 'node:net';`,
    `import { pino } from 'pino';`,
  ]) {
    const msgs = await restrictedMessages('protocol', `${imp}\nexport const z = 1;\n`);
    assert.equal(msgs.length, 1, imp);
  }
  assert.equal(
    (await restrictedMessages('protocol', `import { isIPv4 } from 'node:net';\nexport const z = isIPv4;\n`))
      .length,
    0,
  );
});

test('lint zone: web/ (the dashboard, browser code) imports nothing from src/ and no Node built-in', async () => {
  const webRefusals = async (specifier: string): Promise<number> => {
    const results = await eslint.lintText(`import { x } from '${specifier}';\nexport const y = x;\n`, {
      filePath: 'web/src/__zone_probe__.tsx',
    });
    const messages = results.flatMap((r) => r.messages);
    const fatal = messages.find((m) => m.fatal);
    if (fatal) throw new Error(`eslint could not lint the probe: ${fatal.message}`);
    return messages.filter((m) => m.ruleId === 'no-restricted-imports').length;
  };
  for (const bad of [
    '../../src/api/app.js',
    '../../src/api/schemas.js',
    '../../../src/shared/clock.js',
    'node:fs',
  ])
    assert.equal(await webRefusals(bad), 1, `web -> ${bad} should be refused`);
  for (const good of ['./api.js', './ui.js', 'preact', 'preact/hooks', 'qrcode'])
    assert.equal(await webRefusals(good), 0, `web -> ${good} should be allowed`);
});
