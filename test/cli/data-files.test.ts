/**
 * The small JSON files in the data directory (api-endpoint.json, web-endpoint.json,
 * first-start.pending) are read with one rule: none is no error; one that is there but damaged
 * (empty, not JSON, fields missing) is refused in one line naming it and the way out. Before,
 * each was taken for "none" silently: a fleet node's restart moved its API to a new port (Outline
 * Manager's saved URL stopped working), `ladder keys url` left out the web URLs, a first start's
 * retry lost the key it had made. They are written whole (a temporary file renamed over).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadApiAddress, saveApiAddress } from '../../src/api/api-endpoint.js';
import { CERT_FILE, ensureCertificate } from '../../src/api/tls.js';
import { LocalKeys } from '../../src/cli/commands/keys/local.js';
import { rotateCertText } from '../../src/cli/commands/server-rotate-cert.js';
import { reportError } from '../../src/cli/errors.js';
import { readFirstStartMark, writeFirstStartMark } from '../../src/cli/first-start-mark.js';
import { startManaged } from '../../src/cli/managed.js';
import { loadWebEndpoint, saveWebEndpoint } from '../../src/cli/web.js';
import { DataFileError } from '../../src/shared/data-file.js';
import { silentLogger } from '../../src/shared/logger.js';
import { tempDir } from '../api/helpers.js';
import { flags } from '../api/managed-helpers.js';

const FILES = [
  { name: 'api-endpoint.json', read: loadApiAddress, fix: /delete it to go on \(the API writes it again/ },
  {
    name: 'web-endpoint.json',
    read: loadWebEndpoint,
    fix: /delete it to go on \(a managed server with a web front/,
  },
  {
    name: 'first-start.pending',
    read: readFirstStartMark,
    fix: /delete it to start \(that start is then a restart/,
  },
];

for (const f of FILES) {
  test(`${f.name}: none is no error; empty, not JSON or unusable is refused in one line naming it`, async (t) => {
    const dir = tempDir(t);
    assert.equal(await f.read(dir), undefined, 'no file: none');
    const file = join(dir, f.name);
    for (const [text, why] of [
      ['', 'empty'],
      ['{"port": 12', 'not JSON'],
      [
        '[1]',
        f.name === 'first-start.pending'
          ? 'not an object'
          : f.name === 'api-endpoint.json'
            ? 'no port'
            : 'fields missing',
      ],
    ]) {
      writeFileSync(file, text!);
      const err = await f.read(dir).then(
        () => assert.fail(`${f.name} ${JSON.stringify(text)} was taken`),
        (e: unknown) => e,
      );
      const report = reportError(err);
      assert.equal(report.exitCode, 2, String(err));
      assert.ok(report.stderr.startsWith(`ladder: ${file}: damaged (${why}); `), report.stderr);
      assert.match(report.stderr, f.fix);
      assert.equal(report.stderr.split('\n').length, 2, 'one line');
    }
  });
}

test('the files are written whole, 0600, and read back', async (t) => {
  const dir = tempDir(t);
  await saveApiAddress(dir, { port: 8443, host: 'node1.example' });
  await saveWebEndpoint(dir, { host: 'h.example', port: 443, path: '/p', tls: true, mux: true, only: true });
  await writeFirstStartMark(dir, { key: 'ab' });
  assert.deepEqual(await loadApiAddress(dir), { port: 8443, host: 'node1.example' });
  assert.deepEqual(await loadWebEndpoint(dir), {
    host: 'h.example',
    port: 443,
    path: '/p',
    tls: true,
    mux: true,
    only: true,
  });
  assert.deepEqual(await readFirstStartMark(dir), { key: 'ab' });
  for (const f of FILES) assert.equal(statSync(join(dir, f.name)).mode & 0o777, 0o600, f.name);
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.endsWith('.tmp')),
    [],
    'no temporary file left',
  );
});

test('a managed start refuses a damaged first-start mark in one line', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'first-start.pending'), '{"key": "ab');
  const err = await startManaged({ ...flags(dir), metrics: false }, silentLogger, { drawQr: false }).then(
    async (m) => {
      await m.close();
      assert.fail('the start served');
    },
    (e: unknown) => e,
  );
  assert.equal(
    reportError(err).stderr,
    `ladder: ${join(dir, 'first-start.pending')}: damaged (not JSON); delete it to start (that start is then a restart: \`ladder server access-config\` prints the access config and keys)\n`,
  );
});

test('a damaged api-endpoint.json is refused before `keys add` makes a key or `server rotate-cert` a certificate', async (t) => {
  const dir = tempDir(t);
  await ensureCertificate(dir, '127.0.0.1');
  const keys = await LocalKeys.open(dir, undefined, true);
  try {
    const file = join(dir, 'api-endpoint.json');
    writeFileSync(file, '{"port": 12');
    await assert.rejects(keys.add({ name: 'k' }), DataFileError);
    const cert = readFileSync(join(dir, CERT_FILE), 'utf8');
    await assert.rejects(rotateCertText({ dataDir: dir }), DataFileError);
    assert.equal(readFileSync(join(dir, CERT_FILE), 'utf8'), cert, 'the certificate is as it was');
    unlinkSync(file);
    assert.deepEqual(
      (await keys.list()).map((k) => k.name),
      [],
      'no key was made by the refused add',
    );
  } finally {
    await keys.close();
  }
});
