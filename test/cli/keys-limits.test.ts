// `ladder keys devices|speed` and `keys add --devices --speed` (docs/limits.md): against a real
// store file and through a server's API (--api), the same; `keys list` shows both; every refusal
// is one line with exit 2 and changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { tempDir } from '../api/helpers.js';
import { inproc, remoteKeysApi } from '../api/keys-inproc.js';
import { runLadder } from '../helpers/ladder-run.js';

async function stored(
  dir: string,
  id: string,
): Promise<[number | null | undefined, number | null | undefined]> {
  const store = await openStore(parseStoreLocation(undefined, dir));
  try {
    const k = await store.getKey(id);
    return [k?.deviceLimit, k?.speedLimit];
  } finally {
    await store.close();
  }
}

test('keys add --devices --speed, devices, speed, list, none: a local store file', async (t) => {
  const dir = tempDir(t);
  const d = ['--data-dir', dir];
  let r = await inproc(['keys', '--init', 'add', '--name', 'A', '--devices', '2', '--speed', '10Mbit', ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^created key 0 "A": at most 2 device\(s\) at once, speed limit 10 Mbit\/s each way\n/,
  );
  assert.deepEqual(await stored(dir, '0'), [2, 1_250_000]);

  r = await inproc(['keys', 'devices', '0', '3', ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'key 0 "A": at most 3 devices (client addresses) at once\n');
  r = await inproc(['keys', 'speed', '0', '2MB/s', ...d]);
  assert.equal(r.stdout, 'key 0 "A": speed limit 16 Mbit/s each way\n');
  assert.deepEqual(await stored(dir, '0'), [3, 2_000_000]);

  r = await inproc(['keys', 'add', '--name', 'B', ...d]);
  assert.equal(r.code, 0, r.stderr);
  r = await inproc(['keys', 'list', ...d]);
  const [head, a, b] = r.stdout.split('\n');
  assert.match(head!, /LAST SEEN\s+DEVICE LIMIT\s+SPEED LIMIT\s+PREFIX$/);
  assert.match(a!, /\s3\s+16 Mbit\/s\s+auto$/);
  assert.match(b!, /\snone\s+none\s+auto$/);
  r = await inproc(['keys', 'list', '--json', ...d]);
  const list = JSON.parse(r.stdout) as { deviceLimit?: unknown; speedLimit?: unknown }[];
  assert.deepEqual(list[0]?.deviceLimit, { devices: 3 });
  assert.deepEqual(list[0]?.speedLimit, { bytesPerSecond: 2_000_000 });
  assert.equal(list[1]?.deviceLimit, undefined);

  r = await inproc(['keys', 'devices', '0', 'none', ...d]);
  assert.equal(r.stdout, 'key 0 "A": device limit removed (any number of devices)\n');
  r = await inproc(['keys', 'speed', '0', 'off', ...d]);
  assert.equal(r.stdout, 'key 0 "A": speed limit removed (no limit)\n');
  assert.deepEqual(await stored(dir, '0'), [null, null]);
  r = await inproc(['keys', 'devices', '9', '2', ...d]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^ladder: no access key with id "9"\n$/);
});

test('keys devices|speed refusals: one line, exit 2, nothing changed', async (t) => {
  const dir = tempDir(t);
  const d = ['--data-dir', dir];
  assert.equal((await inproc(['keys', '--init', 'add', '--devices', '4', ...d])).code, 0);
  const cases: [string[], RegExp][] = [
    [
      ['devices', '0', '0'],
      /device limit must be at least 1, got "0" \(to stop a key use .* keys disable; for no limit: none\)/,
    ],
    [['devices', '0', '2.5'], /device limit must be a whole number of devices from 1 to 10000, got "2\.5"/],
    [['devices', '0', '10001'], /from 1 to 10000, got "10001"/],
    [['devices', '0', 'many'], /got "many"/],
    [['devices', '0', '-1'], /device limit must be a whole number of devices from 1 to 10000, got "-1"/],
    [
      ['speed', '0', '1000'],
      /speed limit must be a rate with a unit: kbit, Mbit, Gbit .* like 10Mbit, got "1000"/,
    ],
    [['speed', '0', '1kbit'], /speed limit must be at least 1 KiB\/s/],
    [['speed', '0', '10 parsecs'], /speed limit must be a rate with a unit/],
    [['add', '--devices', '0'], /--devices must be at least 1/],
    [['add', '--speed', '5'], /--speed must be a rate with a unit/],
  ];
  for (const [args, why] of cases) {
    const r = await inproc(['keys', ...args, ...d]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, /^ladder: [^\n]*\n$/, `one line: ${r.stderr}`);
    assert.match(r.stderr, why, args.join(' '));
    assert.equal(r.stdout, '');
  }
  assert.deepEqual(await stored(dir, '0'), [4, null]);
  const store = await openStore(parseStoreLocation(undefined, dir));
  assert.equal(await store.countKeys(), 1, 'no key added');
  await store.close();
});

test('keys devices|speed through --api: the same verbs, the server stores them', async (t) => {
  const { store, cfg } = await remoteKeysApi(t);
  let r = await inproc(['keys', 'add', '--name', 'R', '--speed', '500kbit', '--devices', '1', '--api', cfg]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^created key 0 "R": at most 1 device\(s\) at once, speed limit 500 kbit\/s each way/,
  );
  assert.deepEqual(
    [(await store.getKey('0'))?.deviceLimit, (await store.getKey('0'))?.speedLimit],
    [1, 62_500],
  );
  r = await inproc(['keys', 'devices', '0', '5', '--api', cfg]);
  assert.equal(r.stdout, 'key 0 "R": at most 5 devices (client addresses) at once\n');
  r = await inproc(['keys', 'speed', '0', '1Gbit', '--api', cfg]);
  assert.equal(r.stdout, 'key 0 "R": speed limit 1 Gbit/s each way\n');
  r = await inproc(['keys', 'list', '--api', cfg]);
  // Through the API the server's count of devices in use follows the limit (none connected here).
  assert.match(r.stdout.split('\n')[1]!, /\s5 \(0 in use\)\s+1 Gbit\/s\s+auto$/);
  r = await inproc(['keys', 'speed', '0', 'none', '--api', cfg]);
  assert.equal(r.code, 0, r.stderr);
  r = await inproc(['keys', 'devices', '0', 'none', '--api', cfg]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    [(await store.getKey('0'))?.deviceLimit, (await store.getKey('0'))?.speedLimit],
    [null, null],
  );
  r = await inproc(['keys', 'speed', '0', '12', '--api', cfg]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /a rate with a unit/);
});

test('the real ladder process: a bare rate is refused in one line, exit 2', async (t) => {
  const dir = tempDir(t);
  const r = await runLadder(['keys', '--init', '--data-dir', dir, 'add', '--speed', '100'], {
    killAfterMs: 45_000,
  });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /--speed must be a rate with a unit: .* got "100"/);
});
