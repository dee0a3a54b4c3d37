/**
 * D1 for phones: the Outline `prefix` our dynamic keys carry (src/protocol/shadowsocks/key-prefix.ts,
 * served by src/api/dynamic.ts on every fetch).
 *
 *  1. An "Outline-style client" (it reads the dynamic-key JSON the way Outline's legacy parser
 *     does and uses the key's prefix as the first salt bytes of every connection, and nothing
 *     else: no shaping of its own, header and data in one chunk) passes the deterministic C6
 *     detector with the key's prefix, and the same client without the prefix is caught (the
 *     negative control). 40 fetches x 5 connections, through the lab's censor to Ladder's server.
 *  2. The same client against shadowsocks-libev's ss-server: a fixed per-key prefix as the salt's
 *     start is accepted (the server needs nothing), across many connections of one key.
 *  3. 1,000 dynamic-key fetches (the real API on a real SQLite store) give prefixes with no
 *     constant byte at offsets 0..15 across fetches; the control (a pinned prefix) is caught by
 *     the same check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import { keyPrefixFor } from '../../src/protocol/shadowsocks/key-prefix.js';
import { fetFeatures, maxShare, offsetEntropy } from '../../src/protocol/shadowsocks/shaping-features.js';
import { harness, tempDir, type Harness } from '../api/helpers.js';
import { startSsServer, which, type Method } from '../helpers/peers.js';
import { prerequisiteMissing } from '../helpers/prereq.js';
import { echoOnce, pool, startShapingWorld } from './shaping-helpers.js';

const METHOD = 'chacha20-ietf-poly1305';

interface LegacyConfig {
  server: string;
  server_port: number;
  method: string;
  password: string;
  prefix?: Uint8Array;
}

/** Outline's LegacyShadowsocksConfig rules: these fields only; `prefix` one character per byte. */
function parseLegacyConfig(body: string): LegacyConfig {
  const doc = JSON.parse(body) as Record<string, unknown>;
  const known = ['server', 'server_port', 'method', 'password', 'prefix'];
  const unknown = Object.keys(doc).filter((k) => !known.includes(k));
  assert.deepEqual(unknown, [], 'Outline refuses unknown fields');
  assert.equal(typeof doc.server, 'string');
  assert.equal(typeof doc.server_port, 'number');
  let prefix: Uint8Array | undefined;
  if (doc.prefix !== undefined) {
    const s = String(doc.prefix);
    const codes = Array.from(s, (c) => c.codePointAt(0)!);
    assert.ok(
      codes.every((c) => c <= 0xff),
      'each prefix character stands for one byte',
    );
    prefix = Uint8Array.from(codes);
  }
  return {
    server: String(doc.server),
    server_port: Number(doc.server_port),
    method: String(doc.method),
    password: String(doc.password),
    ...(prefix ? { prefix } : {}),
  };
}

async function dynamicKey(
  h: Harness,
  method: string,
): Promise<{ password: string; fetch: () => Promise<LegacyConfig> }> {
  const created = await h.call('POST', '/access-keys', { name: 'phone', method });
  assert.equal(created.statusCode, 201, created.body);
  const key = JSON.parse(created.body) as { id: string; password: string };
  const token = (await h.store.getKey(key.id))!.accessToken;
  return {
    password: key.password,
    fetch: async () => {
      const res = await h.app.inject({ method: 'GET', url: `/access/${token}` });
      assert.equal(res.statusCode, 200);
      return parseLegacyConfig(res.body);
    },
  };
}

/** An Outline-style client: the key's prefix (or none), SIP004, no shaping of its own. */
function outlineStyleDialer(
  cfg: LegacyConfig,
  at: { host: string; port: number },
  withPrefix: boolean,
): ShadowsocksDialer {
  return new ShadowsocksDialer({
    host: at.host,
    port: at.port,
    method: cfg.method,
    password: cfg.password,
    ...(withPrefix && cfg.prefix ? { prefix: cfg.prefix } : {}),
  });
}

const FETCHES = 40;
const PER_FETCH = 5;

test("Outline-style client vs C6 (deterministic): 0 triggers with the key's prefix over 40 fetches x 5 connections; caught without it (negative control)", async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const key = await dynamicKey(h, METHOD);
  const lab = await startShapingWorld({ method: METHOD, secret: key.password }, 4);
  try {
    const run = async (
      withPrefix: boolean,
    ): Promise<{ blocked: number; judged: number; ok: number; exempt: string[] }> => {
      const seq = lab.world.log.records.length;
      let ok = 0;
      for (let f = 0; f < FETCHES; f++) {
        const cfg = await key.fetch();
        assert.ok(cfg.prefix && cfg.prefix.length >= 3, 'a chacha20 key carries a prefix');
        const dialer = outlineStyleDialer(cfg, lab.front, withPrefix);
        await pool(PER_FETCH, PER_FETCH, async () => {
          if (await echoOnce(dialer, lab.echoPort, 5000)) ok++;
        });
      }
      const d = lab.c6Since(seq);
      const exempt = d
        .filter((x) => x.action === 'PASS')
        .map((x) => ['ex1', 'ex2', 'ex3', 'ex4', 'ex5'].filter((e) => x.features[e] === true).join('+'));
      return { blocked: d.filter((x) => x.action === 'DROP_C2S').length, judged: d.length, ok, exempt };
    };
    const n = FETCHES * PER_FETCH;
    const shaped = await run(true);
    assert.equal(shaped.judged, n, 'C6 judged every first packet');
    assert.equal(shaped.blocked, 0, "0 C6 triggers with the key's prefix");
    assert.equal(shaped.ok, n, 'every connection echoed: the server accepts the prefixed salts');
    const control = await run(false);
    assert.equal(control.judged, n);
    // Random first packets are exempt by chance with p = 0.27 % (Ex2): more than 10 of 200 with
    // P = 1e-11 (">= 97 %", 7 of 200, failed by chance with P = 1.4e-6 a run).
    assert.ok(control.blocked >= 0.95 * n, `without the prefix: ${control.blocked}/${n} blocked`);
    assert.ok(
      control.exempt.every((e) => e !== ''),
      `exempt only by chance through an Ex rule: ${control.exempt.join(', ')}`,
    );
    console.log(
      `# Outline-style client: with the key's prefix 0/${n} C6 triggers, ${shaped.ok}/${n} echoed; ` +
        `without it ${control.blocked}/${n} blocked (${control.exempt.length} exempt by chance: ${control.exempt.join(', ') || 'none'})`,
    );
  } finally {
    await lab.close();
  }
});

const libev = which('ss-server') !== undefined;
if (!libev)
  prerequisiteMissing(
    'ss-server (shadowsocks-libev) not installed',
    'skipping the key-prefix interop with ss-server',
  );

test(
  "ss-server accepts an Outline-style client's fixed key prefix as the salt start on every connection",
  { skip: !libev },
  async () => {
    const echo = net.createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const echoPort = (echo.address() as net.AddressInfo).port;
    for (const method of ['chacha20-ietf-poly1305', 'aes-256-gcm'] as Method[]) {
      const password = randomBytes(12).toString('base64url');
      const peer = await startSsServer({ method, password });
      try {
        for (let k = 0; k < 4; k++) {
          const prefix = keyPrefixFor(method)!;
          const cfg: LegacyConfig = { server: '127.0.0.1', server_port: peer.port, method, password, prefix };
          const dialer = outlineStyleDialer(cfg, { host: '127.0.0.1', port: peer.port }, true);
          let ok = 0;
          await pool(10, 5, async () => {
            if (await echoOnce(dialer, echoPort, 5000)) ok++;
          });
          assert.equal(ok, 10, `${method}, prefix ${Buffer.from(prefix).toString('hex')}: ${ok}/10 echoed`);
        }
      } finally {
        await peer.stop();
      }
    }
    echo.close();
  },
);

/** Per offset 0..15: how many prefixes reach it, distinct values, top share, entropy (bits). */
function offsetTable(
  prefixes: readonly Uint8Array[],
): { n: number; distinct: number; top: number; bits: number }[] {
  return Array.from({ length: 16 }, (_, i) => {
    const at = prefixes.filter((p) => p.length > i);
    const values = at.map((p) => String(p[i]));
    return {
      n: at.length,
      distinct: new Set(values).size,
      top: maxShare(values),
      bits: offsetEntropy(at, i),
    };
  });
}

test('1,000 dynamic-key fetches: no constant prefix byte at offsets 0..15 across fetches; a pinned prefix (control) is caught by the same check', async (t) => {
  const h = await harness(tempDir(t));
  t.after(() => h.close());
  const key = await dynamicKey(h, METHOD);
  const prefixes: Uint8Array[] = [];
  for (let i = 0; i < 1000; i++) prefixes.push((await key.fetch()).prefix!);
  assert.equal(prefixes.length, 1000);
  assert.ok(prefixes.every((p) => p !== undefined && p.length >= 3 && p.length <= 16));
  assert.ok(
    prefixes.every((p) => {
      const f = fetFeatures(Buffer.concat([p, Buffer.alloc(64, 0x80)]));
      return f.ex2 || f.ex5;
    }),
  );
  const table = offsetTable(prefixes);
  for (const [i, row] of table.entries()) {
    // 7.3 % of prefixes reach offset 15: fewer than 20 of 1,000 with P = 1e-14 (30: 1.3e-9).
    assert.ok(row.n >= 20, `offset ${i}: only ${row.n} prefixes reach it (the check would be weak)`);
    assert.ok(row.distinct > 1, `offset ${i}: constant across fetches`);
    assert.ok(row.top < 0.3, `offset ${i}: one value in ${(100 * row.top).toFixed(1)} % of fetches`);
    // Entropy is capped by log2(samples): judged where at least 200 prefixes reach the offset
    // (offsets 0..12 or so; the 16-byte prefixes that reach 15 are ~7 % of draws).
    if (row.n >= 200) assert.ok(row.bits > 4, `offset ${i}: ${row.bits.toFixed(2)} bits`);
  }
  const whole = maxShare(prefixes.map((p) => Buffer.from(p).toString('hex')));
  assert.ok(whole <= 0.01, `one prefix recurs in ${(100 * whole).toFixed(1)} % of fetches`);
  console.log(
    `# 1,000 fetches: per offset 0-15 (prefixes reaching it / distinct values / top share / bits): ` +
      table.map((r, i) => `${i}:${r.n}/${r.distinct}/${r.top.toFixed(2)}/${r.bits.toFixed(1)}`).join(' ') +
      `; most common whole prefix ${(100 * whole).toFixed(1)} %`,
  );
  // Control: a pinned prefix is the same on every fetch, and the check sees it.
  const pinned = Uint8Array.from(Buffer.from('POST /api'));
  const pinnedTable = offsetTable(Array.from({ length: 1000 }, () => keyPrefixFor(METHOD, pinned)!));
  assert.ok(pinnedTable.slice(0, pinned.length).every((r) => r.distinct === 1 && r.top === 1));
});
