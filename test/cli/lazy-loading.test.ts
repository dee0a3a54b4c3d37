/**
 * Each mode loads only what it needs (issue 15, "lighter processes"): `ladder client` and the
 * unmanaged server (`ladder server --password …`) never load the management plane (fastify,
 * kysely, SQLite, Postgres, prom-client), the QR code drawer, YAML, the lab or, for the client
 * without --dns, dns-packet (nor, with a static key, ws, node:tls or node:https). Each mode is
 * started as a user starts it (bin/ladder.js) under a
 * preload that records every module loaded (test/helpers/record-modules.mjs); the managed server
 * is the control that proves the recorder sees those packages when they are loaded.
 *
 * From a build, bin/ladder.js runs the bundle (scripts/build.mjs): the recorder then sees
 * dist/cli/main.js and the dist/chunks/ files the mode loaded, and dist/meta.json says which
 * sources and packages each of those files holds, so the same checks apply to the bundle.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { freePort } from '../helpers/net.js';
import { LADDER_BIN, REPO_ROOT, spawnPeer, ssUrl } from '../helpers/peers.js';

const RECORDER = join(REPO_ROOT, 'test', 'helpers', 'record-modules.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'ladder-lazy-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Packages (node_modules/<name>/) that only the managed server, `keys` or the lab need. */
const MANAGEMENT_PACKAGES = [
  'fastify',
  '@fastify/swagger',
  'fastify-type-provider-zod',
  'kysely',
  'better-sqlite3',
  'pg',
  'prom-client',
  'qrcode',
  'yaml',
  'pino-pretty',
];

/** Start a mode under the recorder, wait for its port, stop it; the modules it loaded. */
async function modulesOf(
  name: string,
  args: string[],
  port: number,
  ready?: RegExp,
): Promise<{ modules: string[]; output: string }> {
  const file = join(tmp, `${name}.txt`);
  const peer = await spawnPeer(name, process.execPath, ['--import', RECORDER, LADDER_BIN, ...args], {
    waitPort: port,
    env: { LADDER_RECORD_MODULES: file },
  });
  // The banner comes after the port opens: wait for it, so what drawing it loads is recorded.
  for (let i = 0; ready && !ready.test(peer.output()) && i < 200; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await peer.stop();
  const modules = [...new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean))];
  return { modules: expandBundle(modules), output: peer.output() };
}

/** Bundle files (dist/…js) replaced by the sources and package files they were built from. */
function expandBundle(modules: readonly string[]): string[] {
  const dist = join(REPO_ROOT, 'dist');
  const out: string[] = [];
  let meta: Record<string, string[]> | undefined;
  for (const m of modules) {
    const path = m.startsWith('file://') ? fileURLToPath(m) : m;
    if (!path.startsWith(`${dist}/`) || !path.endsWith('.js')) {
      out.push(m);
      continue;
    }
    meta ??= JSON.parse(readFileSync(join(dist, 'meta.json'), 'utf8')) as Record<string, string[]>;
    const inputs = meta[path.slice(dist.length + 1)];
    assert.ok(inputs, `dist/meta.json lists ${path}`);
    out.push(path, ...inputs.map((i) => join(REPO_ROOT, i)));
  }
  return out;
}

function packagesIn(modules: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const m of modules) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(m);
    if (match) names.add(match[1]!);
  }
  return names;
}

/** Our own modules from these src/ (or dist/) folders, other than the allowed files. */
function ownModulesIn(modules: readonly string[], folders: string[], allowed: string[] = []): string[] {
  const re = new RegExp(`/(?:src|dist)/(?:${folders.join('|')})/`);
  return modules.filter(
    (m) => !m.includes('/node_modules/') && re.test(m) && !allowed.some((a) => m.includes(a)),
  );
}

function assertLean(modules: readonly string[], extra: { forbid?: string[]; allow?: string[] } = {}): void {
  const loaded = packagesIn(modules);
  const forbidden = [...MANAGEMENT_PACKAGES, ...(extra.forbid ?? [])].filter(
    (p) => loaded.has(p) && !extra.allow?.includes(p),
  );
  assert.deepEqual(forbidden, [], `loaded ${forbidden.join(', ')}`);
  // cli/errors.ts recognises the lab's, the store's and the API certificate's error classes
  // (small, no dependencies).
  const own = ownModulesIn(
    modules,
    ['api', 'store', 'metrics', 'lab', 'probe'],
    ['/lab/lab-ca.', '/store/types.', '/api/cert-error.'],
  );
  assert.deepEqual(own, [], `loaded ${own.join(', ')}`);
}

test('ladder client loads neither the management plane, the lab nor dns-packet', async () => {
  const port = await freePort();
  const key = ssUrl('chacha20-ietf-poly1305', 'lazy-loading-test', '127.0.0.1', await freePort());
  const { modules } = await modulesOf(
    'client',
    ['client', '--key', key, '--socks', `127.0.0.1:${port}`],
    port,
  );
  assert.ok(
    modules.some((m) => /\/client\/index\.(ts|js)$/.test(m)),
    'the recorder saw the client',
  );
  // ws and node:tls / node:https load at the first WebSocket dial or dynamic-key fetch, not at start.
  // zod is the config file's schema: a client without --config never needs it (it once came in with
  // --auth parsing and cost 4 MiB of idle RSS).
  assertLean(modules, { forbid: ['dns-packet', 'pino', 'ws', 'zod'] });
  const tls = modules.filter((m) => /^node:(tls|https)$/.test(m));
  assert.deepEqual(tls, [], `loaded ${tls.join(', ')}`);
  // UDP ASSOCIATE's relay (its codecs, the 2022 one with @noble/ciphers, batching sockets) loads
  // with --udp only: ~0.3 MiB of idle RSS a TCP-only client carried (50.1 -> 49.8 MiB).
  const udp = modules.filter((m) => /\/(client\/udp-associate|transport\/batch-udp)\.(ts|js)$/.test(m));
  assert.deepEqual(udp, [], `loaded ${udp.join(', ')}`);
  // The 2022 dialer, its codec and BLAKE3 (@noble/hashes) load at a 2022 key's first dial: a SIP004
  // key never needs them (~0.3 MiB of idle RSS, 49.9 -> 49.6 MiB).
  assertLean(modules, { forbid: ['@noble/hashes', '@noble/ciphers'] });
  const edition2022 = modules.filter((m) =>
    /\/(transport\/shadowsocks2022-dialer|protocol\/shadowsocks\/(aead2022|kdf2022|identity))\.(ts|js)$/.test(
      m,
    ),
  );
  assert.deepEqual(edition2022, [], `loaded ${edition2022.join(', ')}`);
});

test('the unmanaged server (--password) loads neither the management plane nor the lab', async () => {
  const port = await freePort();
  const { modules, output } = await modulesOf(
    'server',
    ['server', '--password', 'lazy-loading-test', '--host', '127.0.0.1', '--port', String(port)],
    port,
    /Try it/,
  );
  assert.ok(
    modules.some((m) => /\/server\/workers\/pool\.(ts|js)$/.test(m)),
    'the recorder saw the data-plane pool',
  );
  // Its main thread relays nothing (the workers do, and load the Shadowsocks server themselves).
  const relay = modules.filter((m) => /\/server\/(server|connection|data-plane)\.(ts|js)$/.test(m));
  assert.deepEqual(relay, [], `the main thread loaded ${relay.join(', ')}`);
  // qrcode is loaded when the banner draws a QR code, and only then.
  assertLean(modules, /[▄█]/.test(output) ? { allow: ['qrcode'], forbid: ['pino'] } : { forbid: ['pino'] });
});

test('the web front without --acme loads no ACME client', async () => {
  const port = await freePort();
  const webPort = await freePort();
  const args = ['server', '--password', 'lazy-loading-test', '--host', '127.0.0.1', '--port', String(port)];
  args.push('--web-port', String(webPort), '--web-host', '127.0.0.1', '--web-path', '/lazyloadingpath');
  const { modules } = await modulesOf('web', args, webPort, /Try it/);
  assert.ok(
    modules.some((m) => /\/server\/web\/front\.(ts|js)$/.test(m)),
    'the recorder saw the web front',
  );
  const acme = [...packagesIn(modules)].filter((p) => p === 'acme-client' || p === 'axios');
  assert.deepEqual(acme, [], `loaded ${acme.join(', ')}`);
  assertLean(modules, { forbid: ['pino'] });
});

test('the managed server does load them (the recorder sees CommonJS packages), but not pg', async () => {
  const port = await freePort();
  const args = ['server', '--data-dir', join(tmp, 'data'), '--host', '127.0.0.1', '--port', String(port)];
  args.push('--api-host', '127.0.0.1', '--api-port', String(await freePort()));
  args.push('--metrics-port', String(await freePort()));
  const loaded = packagesIn((await modulesOf('managed', args, port)).modules);
  for (const p of ['fastify', 'kysely', 'better-sqlite3', 'prom-client']) assert.ok(loaded.has(p), p);
  assert.ok(!loaded.has('pg'), 'a SQLite store does not load pg');
});
