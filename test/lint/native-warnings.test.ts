import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { prerequisiteMissing } from '../helpers/prereq.js';

// The addon's sources compile without new warnings under binding.gyp's own flags (-Wall -Wextra):
// each file of its "sources" is checked by g++ -fsyntax-only (about 3 s for all), against this
// node's headers as scripts/build-native.mjs uses them. The warnings known and left are listed by
// file and kind; any other is a failure (tcp_accept.cc's SetPolling mixed an enum and an int in a
// conditional, -Wextra's "enumerated and non-enumerated type").

const ROOT = new URL('../../', import.meta.url).pathname;
const KNOWN: readonly { file: string; kind: RegExp; why: string }[] = [
  {
    file: 'native/oneshot.cc',
    kind: /-Wdeprecated-declarations/,
    why: 'OpenSSL 3 deprecates the SHA1_* calls HKDF-SHA1 is built on (no EVP equivalent of SHA1_Transform)',
  },
];

const run = promisify(execFile);

test('the native addon compiles without new -Wall -Wextra warnings', async (t) => {
  const gyp = JSON.parse(
    readFileSync(join(ROOT, 'binding.gyp'), 'utf8')
      .split('\n')
      .filter((l) => !l.trimStart().startsWith('#'))
      .join('\n'),
  ) as { targets: { sources: string[]; defines: string[]; cflags_cc: string[] }[] };
  const target = gyp.targets[0]!;
  const headers = join(dirname(dirname(process.execPath)), 'include', 'node');
  const gpp = await run('g++', ['--version']).then(
    () => true,
    () => false,
  );
  if (!gpp || !existsSync(join(headers, 'node_api.h'))) {
    t.skip(prerequisiteMissing(`g++ and node's headers (${headers}) to compile native/`));
    return;
  }
  const flags = [
    '-std=c++17',
    '-fsyntax-only',
    ...target.cflags_cc.filter((f) => f.startsWith('-W')),
    ...target.defines.map((d) => `-D${d}`),
    `-isystem${headers}`, // node's and V8's own headers (idle_memory.cc includes v8.h) are not ours to fix
  ];
  const found: string[] = [];
  const queue = [...target.sources];
  const worker = async (): Promise<void> => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const r = await run('g++', [...flags, file], { cwd: ROOT, maxBuffer: 1 << 24 }).catch(
        (err: { stderr?: string; message: string }) => {
          throw new Error(`g++ ${file}: ${err.stderr ?? err.message}`);
        },
      );
      for (const line of r.stderr.split('\n'))
        if (/ warning: /.test(line) && !KNOWN.some((k) => line.startsWith(`${k.file}:`) && k.kind.test(line)))
          found.push(line);
    }
  };
  await Promise.all([worker(), worker()]);
  assert.deepEqual(found, [], 'new warnings (fix them, or list them in KNOWN with why)');
});
