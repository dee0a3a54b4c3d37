// A damaged, empty, lone or mismatched API certificate or key is refused at start, never replaced
// silently (Outline Manager pins the fingerprint); `ladder server rotate-cert` replaces it on purpose
// and prints the new fingerprint and access config (issue 14, item 3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startManaged } from '../../src/cli/managed.js';
import { CertificateError } from '../../src/api/index.js';
import { createLogger, silentLogger } from '../../src/shared/logger.js';
import { tempDir } from './helpers.js';
import { api, flags } from './managed-helpers.js';
import { managedServerArgs, runLadder } from '../helpers/ladder-run.js';
import { run } from '../helpers/cli-run.js';

async function fingerprintOfFirstStart(dir: string): Promise<string> {
  const m = await startManaged(flags(dir), silentLogger);
  const sha = m.api!.certSha256;
  await m.close();
  return sha;
}

test('damaged, empty, missing-half and mismatched certificate or key: refused, files untouched', async (t) => {
  const dir = tempDir(t);
  const sha = await fingerprintOfFirstStart(dir);
  const certPath = join(dir, 'api-cert.pem');
  const keyPath = join(dir, 'api-key.pem');
  const cert = readFileSync(certPath, 'utf8');
  const key = readFileSync(keyPath, 'utf8');
  const other = tempDir(t);
  await fingerprintOfFirstStart(other);
  const otherKey = readFileSync(join(other, 'api-key.pem'), 'utf8');

  const cases: Array<[string, () => void, string, RegExp]> = [
    ['empty certificate', () => writeFileSync(certPath, ''), certPath, /is empty/],
    [
      'garbled certificate',
      () => writeFileSync(certPath, cert.replace(/[A-Za-z]/g, 'Q')),
      certPath,
      /not a PEM certificate/,
    ],
    ['empty key', () => writeFileSync(keyPath, ''), keyPath, /is empty/],
    ['garbled key', () => writeFileSync(keyPath, key.slice(0, 60)), keyPath, /not a PEM private key/],
    ['deleted key', () => rmSync(keyPath), keyPath, /is missing \(its certificate/],
    ['deleted certificate', () => rmSync(certPath), certPath, /is missing \(its key/],
    ['another key', () => writeFileSync(keyPath, otherKey), keyPath, /is not the key of/],
  ];
  for (const [name, damage, file, why] of cases) {
    writeFileSync(certPath, cert);
    writeFileSync(keyPath, key);
    damage();
    const before = [certPath, keyPath].map((f) => {
      try {
        return readFileSync(f, 'utf8');
      } catch {
        return undefined;
      }
    });
    await assert.rejects(startManaged(flags(dir), silentLogger), (err: unknown) => {
      assert.ok(err instanceof CertificateError, `${name}: ${String(err)}`);
      assert.ok(err.message.startsWith(`API certificate: ${file} `), `${name}: ${err.message}`);
      assert.match(err.message, why);
      assert.ok(err.message.endsWith(`ladder server rotate-cert --data-dir ${dir}`), err.message);
      return true;
    });
    const after = [certPath, keyPath].map((f) => {
      try {
        return readFileSync(f, 'utf8');
      } catch {
        return undefined;
      }
    });
    assert.deepEqual(after, before, `${name}: nothing was regenerated`);
  }
  // Control: the intact pair starts, with the same fingerprint as before.
  writeFileSync(certPath, cert);
  writeFileSync(keyPath, key);
  assert.equal(await fingerprintOfFirstStart(dir), sha);
  // Through the CLI: one line, exit 2, no stack trace.
  writeFileSync(keyPath, '');
  const r = await runLadder(managedServerArgs(dir), { killAfterMs: 30_000 });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.match(
    r.stderr,
    /^ladder: API certificate: .*api-key\.pem is empty; .*ladder server rotate-cert --data-dir /,
  );
  // At the default log level too: nothing (no "listening", no "replay state loaded") before it.
  const loud = run(managedServerArgs(dir));
  assert.equal(await loud.exit, 2, loud.stderr());
  assert.equal(loud.stderr().trimEnd().split('\n').length, 1, loud.stderr());
  assert.match(loud.stderr(), /^ladder: API certificate: /);
});

test('ladder server rotate-cert: a new certificate, its fingerprint and the access config the server then serves', async (t) => {
  const dir = tempDir(t);
  const old = await fingerprintOfFirstStart(dir);
  writeFileSync(join(dir, 'api-cert.pem'), 'garbage');
  const r = await runLadder(['server', 'rotate-cert', '--data-dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  const fp = /SHA-256 fingerprint: ([0-9A-F]{64})\n/.exec(r.stdout)?.[1];
  assert.ok(fp && fp !== old, r.stdout);
  const line = r.stdout.split('\n').find((l) => l.startsWith('{"apiUrl":'));
  assert.ok(line, r.stdout);
  const printed = JSON.parse(line) as { apiUrl: string; certSha256: string };
  assert.equal(printed.certSha256, fp);
  const m = await startManaged(flags(dir), silentLogger);
  t.after(() => m.close());
  assert.equal(m.api!.certSha256, fp, 'the server serves the rotated certificate');
  // The printed access config works against the restarted server (pinned fingerprint checked).
  const res = await api({ apiUrl: m.api!.apiUrl, certSha256: printed.certSha256 }, 'GET', '/server');
  assert.equal(res.status, 200);
});

/** A managed start and stop, with what it logged at warn level. */
async function startLogged(dir: string): Promise<{ sha: string; warnings: string[] }> {
  const lines: string[] = [];
  const log = createLogger({ level: 'warn', destination: { write: (l: string) => lines.push(l) } as never });
  const m = await startManaged(flags(dir), log, { drawQr: false });
  const sha = m.api!.certSha256;
  await m.close();
  return { sha, warnings: lines.map((l) => (JSON.parse(l) as { msg: string }).msg) };
}

test('a restored store in a data directory without the certificate: the new certificate is made with a warning that says what broke and what to do', async (t) => {
  const [a, b, c] = [tempDir(t), tempDir(t), tempDir(t)];
  const first = await startLogged(a);
  assert.deepEqual(first.warnings, [], 'a first start: no warning');
  // Moved to a new host: the store backed up and restored, the two .pem files not copied.
  const backup = join(tempDir(t), 'backup.db');
  assert.equal((await runLadder(['store', 'backup', backup, '--data-dir', a])).code, 0);
  mkdirSync(b, { recursive: true });
  const restored = await runLadder(['store', 'restore', backup, '--data-dir', b]);
  assert.equal(restored.code, 0, restored.stderr);
  const moved = await startLogged(b);
  assert.notEqual(moved.sha, first.sha, 'a new certificate');
  const cert = moved.warnings.filter((w) => w.startsWith('API certificate:'));
  assert.equal(cert.length, 1, moved.warnings.join('\n'));
  assert.match(
    cert[0]!,
    new RegExp(
      `^API certificate: ${b} had no api-cert\\.pem or api-key\\.pem, so this start made a new one \\(SHA-256 ${moved.sha}\\), but its key store has served the API before .*Outline Manager and ssconf:// keys with \\?certSha256= pin the old certificate.*copy both into ${b} .*server access-config --data-dir ${b}.*keys --data-dir ${b} url ID`,
    ),
  );
  assert.deepEqual((await startLogged(b)).warnings, [], 'a restart with the new files: no warning');
  // The files deleted by hand: the same warning (the store has served the API).
  rmSync(join(b, 'api-cert.pem'));
  rmSync(join(b, 'api-key.pem'));
  assert.match((await startLogged(b)).warnings.join('\n'), /^API certificate: .* had no api-cert\.pem/);
  // Control: a store made with `keys --init` before the first start has never served the API.
  assert.equal((await runLadder(['keys', '--init', '--data-dir', c, 'add', '--no-qr'])).code, 0);
  assert.deepEqual((await startLogged(c)).warnings, [], 'keys --init, then the first start: no warning');
});
