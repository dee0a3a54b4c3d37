// `--advertise web` as the CLI reads it from the data dir (web-endpoint.json, saved by the running
// managed server): `keys add`, `keys list --json`, `keys url` and `server access-config` print the
// web front's URL only, never the origin's host:port; the control (the same file without `only`)
// still prints the raw URL, so the search can fail.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../api/helpers.js';
import { inproc } from '../api/keys-inproc.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { runLadder } from '../helpers/ladder-run.js';

const ORIGIN = 'origin-9.example.org';
const PORT = 47_917;

async function printed(t: TestContext, only: boolean): Promise<Map<string, string>> {
  const dir = tempDir(t);
  const store = await openStore(parseStoreLocation(undefined, dir), {
    defaults: { hostname: ORIGIN, port: PORT },
  });
  await store.close();
  const ep = { host: 'cdn.example.net', port: 443, path: '/S3cretPathForCdn', tls: true, mux: true };
  writeFileSync(join(dir, 'web-endpoint.json'), JSON.stringify(only ? { ...ep, only: true } : ep));
  // A running ShadowTLS port (per-key passwords): its key URL names the origin host.
  writeFileSync(
    join(dir, 'shadowtls-endpoint.json'),
    JSON.stringify({ port: 8444, sni: 'www.example.com', perKey: true }),
  );
  const d = ['--data-dir', dir];
  const out = new Map<string, string>();
  for (const [name, args] of [
    ['keys add', ['keys', 'add', '--name', 'A', ...d]],
    ['keys list --json', ['keys', 'list', '--json', ...d]],
    ['keys url', ['keys', 'url', '0', '--no-qr', ...d]],
  ] as const) {
    const r = await inproc([...args]);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    out.set(name, r.stdout);
  }
  const cfg = await runLadder(['server', 'access-config', ...d], { killAfterMs: 45_000 });
  assert.equal(cfg.code, 0, cfg.stderr);
  out.set('server access-config', cfg.stdout);
  return out;
}

/** The origin in an ss:// URL or a listing (the key record's own "port" field aside). */
const names = (text: string): boolean =>
  text.includes(ORIGIN) ||
  text.replaceAll(`"port": ${PORT}`, '').replaceAll(`"port":${PORT}`, '').includes(`${PORT}`);

test('advertise web: keys add/list/url and server access-config print no origin host or port', async (t) => {
  for (const [where, text] of await printed(t, true)) {
    assert.ok(!names(text), `${where}: ${text}`);
    assert.match(text, /ss:\/\/[^\s"]+@cdn\.example\.net:443\/\?plugin=v2ray-plugin/, where);
    assert.ok(!text.includes('shadow-tls'), `${where}: no ShadowTLS URL`);
    if (where === 'keys url')
      assert.match(text, /^static key, over the web front \(.*Outline: the dynamic key\):$/m);
  }
});

test('control: without `only` each prints the raw URL at the origin', async (t) => {
  for (const [where, text] of await printed(t, false)) {
    assert.ok(names(text), `${where}: ${text}`);
    if (where !== 'keys add' && where !== 'keys list --json')
      assert.ok(text.includes('shadow-tls'), `${where}: the ShadowTLS URL`);
  }
});
