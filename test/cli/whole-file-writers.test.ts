/**
 * Every whole-file writer goes through `replaceFile` / `replaceFileSync` (src/shared/data-file.ts):
 * a temporary file at a name no one can guess, created new, synced, renamed, removed when a step
 * fails, with the mode the file needs. Before, five writers had their own temp-and-rename: some
 * at a predictable name opened with 'w' (a symlink planted there was followed, and the secret
 * written through it: an output file in /tmp, the key cache), one left its temporary file behind
 * when the rename failed (the client's memory and status files), one wrote under the umask.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ensureCertificate, rotateCertificate, CERT_FILE, KEY_FILE } from '../../src/api/tls.js';
import { isUserError } from '../../src/cli/errors.js';
import { writeWhole } from '../../src/cli/commands/output-file.js';
import { writeAtomic } from '../../src/client/picker-memory.js';
import { replayStateFile } from '../../src/server/replay-state.js';
import { writeDataFile } from '../../src/shared/data-file.js';
import { markerPath, writeMarker } from '../../src/store/integrity.js';
import { saveKeyCache } from '../../src/store/key-cache.js';
import { tempDir } from '../api/helpers.js';

/** Each writer, writing `text` (or something holding it) to `file`. */
interface Writer {
  name: string;
  file: (dir: string) => string;
  write: (file: string, text: string) => Promise<void> | void;
  /** Make the write fail after the data is written (default: a non-empty directory at FILE). */
  block?: (file: string) => void;
}

const WRITERS: Writer[] = [
  { name: 'an output file (probe --json)', file: (d) => join(d, 'out.json'), write: writeWhole },
  { name: 'a data-directory JSON file', file: (d) => join(d, 'api-endpoint.json'), write: writeDataFile },
  {
    name: 'the key cache',
    file: (d) => join(d, 'keys-cache.json'),
    write: (f, text) =>
      saveKeyCache(f, {
        savedAt: 1,
        port: 1,
        keys: [{ id: text, method: 'm', secret: 's', port: 1 }] as never,
      }),
  },
  {
    name: "the client's memory and status files",
    file: (d) => join(d, 'client-memory.json'),
    write: writeAtomic,
  },
  {
    name: 'the store marker',
    file: (d) => markerPath(join(d, 'ladder.db')),
    write: (f, text) => writeMarker(f.replace(/\.marker$/, ''), { serverId: text, createdTimestampMs: 1 }),
  },
  {
    name: 'the replay state',
    file: (d) => join(d, 'replay.state'),
    write: (f, text) => replayStateFile(f).write(Buffer.from(text)),
    // FILE moves to FILE.prev before the rename: a non-empty directory there fails it.
    block: (f) => blockWith(`${f}.prev`),
  },
];

/** A non-empty directory at `path`: renaming a file over it fails. */
function blockWith(path: string): void {
  mkdirSync(path);
  writeFileSync(join(path, 'x'), '');
}

test('markerPath is FILE.marker (the table above relies on it)', () => {
  assert.equal(markerPath('/x/ladder.db'), '/x/ladder.db.marker');
});

for (const w of WRITERS) {
  test(`${w.name}: a symlink planted at a temporary name is not followed; 0600 whatever the umask`, async (t) => {
    const dir = tempDir(t);
    const file = w.file(dir);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    // The names the writers used before: FILE.tmp and FILE.PID.tmp.
    for (const name of [`${file}.tmp`, `${file}.${process.pid}.tmp`]) symlinkSync(victim, name);
    const old = process.umask(0o277);
    try {
      await w.write(file, 'secret-1');
    } finally {
      process.umask(old);
    }
    assert.equal(readFileSync(victim, 'utf8'), 'untouched', 'written through a planted symlink');
    assert.ok(!lstatSync(file).isSymbolicLink(), 'the file is a symlink to the victim');
    assert.match(readFileSync(file, 'utf8'), /secret-1/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test(`${w.name}: a failed write leaves no temporary file and the old one whole`, async (t) => {
    const dir = tempDir(t);
    const file = w.file(dir);
    await w.write(file, 'secret-1');
    const before = readFileSync(file);
    if (w.block) w.block(file);
    else {
      rmSync(file);
      blockWith(file);
    }
    await assert.rejects(async () => w.write(file, 'secret-2'));
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.endsWith('.tmp')),
      [],
      'a temporary file (holding the data) was left',
    );
    if (w.block) assert.deepEqual(readFileSync(file), before, 'the old file is whole');
    else assert.deepEqual(readdirSync(file), ['x']);
  });
}

test('the API certificate: the key 0600 and the certificate 0644 whatever the umask, no file left', async (t) => {
  const dir = tempDir(t);
  const old = process.umask(0o277);
  let made;
  try {
    made = await ensureCertificate(dir, '127.0.0.1');
  } finally {
    process.umask(old);
  }
  assert.equal(made.created, true);
  assert.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, CERT_FILE)).mode & 0o777, 0o644);
  assert.equal(readFileSync(join(dir, KEY_FILE), 'utf8'), made.key);
  assert.match(made.key, /^-----BEGIN PRIVATE KEY-----\n[^]+\n-----END PRIVATE KEY-----\n$/);
  assert.match(made.cert, /^-----BEGIN CERTIFICATE-----\n[^]+\n-----END CERTIFICATE-----\n$/);
  assert.deepEqual(readdirSync(dir).sort(), [CERT_FILE, KEY_FILE].sort());
  // Read back by a restart: the same pair.
  assert.equal((await ensureCertificate(dir, '127.0.0.1')).sha256, made.sha256);
});

test('the API certificate: a write that fails is one line naming the directory, no key in it', async (t) => {
  const dir = tempDir(t);
  blockWith(join(dir, KEY_FILE)); // the rename over a non-empty directory fails, as a full disk would
  const err = await rotateCertificate(dir, '127.0.0.1').then(
    () => assert.fail('written'),
    (e: unknown) => e as Error,
  );
  assert.ok(isUserError(err), `reported as a bug: ${err.stack}`);
  assert.ok(err.message.startsWith(`cannot write the API certificate in ${dir}: `), err.message);
  assert.match(err.message, /: E[A-Z]+$/);
  assert.doesNotMatch(String(err.stack), /PRIVATE KEY|BEGIN/);
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.endsWith('.tmp')),
    [],
  );
});

test('the API certificate: openssl failing after it printed the key leaves the key in no error', async (t) => {
  const dir = tempDir(t);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const fake = '-----BEGIN PRIVATE KEY-----\nQUJDRA==\n-----END PRIVATE KEY-----';
  writeFileSync(
    join(bin, 'openssl'),
    `#!/bin/sh\nprintf '%s\\n' '${fake}'\necho 'write error' >&2\nexit 1\n`,
    {
      mode: 0o755,
    },
  );
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path ?? ''}`;
  let err: Error;
  try {
    err = await rotateCertificate(join(dir, 'data'), '127.0.0.1').then(
      () => assert.fail('created'),
      (e: unknown) => e as Error,
    );
  } finally {
    process.env.PATH = path;
  }
  assert.match(err.message, /^cannot create the API certificate in /);
  assert.doesNotMatch(inspect(err, { depth: 5 }), /PRIVATE KEY|QUJDRA/);
});
