/**
 * D1/D3 in the lab: Ladder with first-packet shaping vs without, under the fully-encrypted-traffic
 * profile (gfw-2021-2023-fet) in deterministic mode (C6 p_block = 1).
 *
 * What is real and what is driven:
 *  - 1,000 + 1,000 FULL TCP connections go through the censor path (TcpForwarder -> Censor ->
 *    Ladder's server -> an echo server), each carrying a SIP004 first write from Ladder's own
 *    ShadowsocksDialer, configured exactly as `createTunnelDialer` configures it (shaped:
 *    `saltFactory` = the shipped makeShapedSalt composition, `firstWrite` = encodeFirstWrite;
 *    unshaped: neither). The shaped arm records the prefix each connection drew; the test first
 *    checks that its recording salt factory is byte-identical to makeShapedSalt.
 *  - 100 more connections go end to end through `startClient` (SOCKS5 inbound, shaping on by
 *    default) to show the shipped client draws no C6 trigger either.
 *  - A third test repeats the shaped arm with aes-128-gcm, whose 16-byte salt allows only a
 *    6-byte prefix (the tightest case for "no recurring prefix": "GET /" + one of 62 characters).
 *  - C6's residual is set to 0 in both arms, so every connection is judged on its own first packet
 *    (with the measured 180 s residual, the unshaped arm's first trigger would blackhole every
 *    later connection on the same 3-tuple, and we would be counting residual hits, not C6).
 *
 * Why the unshaped arm is blocked ~99.6 %, not 100 %: an unshaped first packet is uniformly
 * random bytes, and the exemptions let some through by chance, exactly as the real GFW's rules
 * would. Ex2 (first 6 bytes printable, 0x20-0x7e): P = (95/256)^6 = 0.26 %. Ex3 (more than half
 * the bytes printable): for a 137-byte packet the printable share is 0.371 +- 0.041, so > 0.5 is
 * 3.1 sd out, ~0.1 %, and less for longer packets. Ex5 (16|17 03 00..09): 0.0005 %. Ex1
 * (popcount/byte <= 3.4 or >= 4.6): > 5 sd out at these lengths. About 3 in 1,000 are exempt
 * (p = 0.27 % a packet); the test asserts >= 98 % blocked (more than 20 of 1,000 exempt by chance:
 * P = 1e-12; the ">= 99 %" it asserted before failed by chance with P = 1e-4 a run) and that every
 * exempt packet was exempt by one of the Ex rules (the log's features say which). First data is
 * 64-600 random bytes (first packets 137-673 bytes).
 *
 * "No recurring prefix" on the wire: the unseeded shipped generator's most likely 6-byte prefix
 * (aes-128-gcm) has p = 0.23 %, so over 1,000 connections one reaches 11 (the 1 % bar) with
 * P = 1.5e-3 a run; the lab asserts <= 2.5 % (P < 1e-16) and the 1 % bar is held deterministically
 * on the generator with a seeded source (src/protocol/shadowsocks/shaping.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { shannonEntropy } from '../../src/lab/fet.js';
import { startClient } from '../../src/client/index.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import {
  encodeFirstWrite,
  generatePrefix,
  inProberTrigger,
  makeShapedSalt,
  prefixBudget,
  type Rng,
} from '../../src/protocol/shadowsocks/shaping.js';
import { socksConnect } from '../../src/lab/client-ops.js';
import { echoOnce, pool, startShapingWorld } from './shaping-helpers.js';

const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'lab-shaping-password';
const N = 1000;
const N_CLIENT = 100;
const CONCURRENCY = 12;

/** makeShapedSalt, composed the same way, recording the prefix it drew. */
function recordingShapedSalt(prefixes: Buffer[], rng?: Rng): (n: number) => Buffer {
  return (n) => {
    const opts = rng ? { rng } : {};
    const prefix = generatePrefix(prefixBudget(n), opts);
    const salt = Buffer.from((rng ?? ((k: number) => randomBytes(k)))(n));
    salt.set(prefix, 0);
    prefixes.push(Buffer.from(prefix));
    return salt;
  };
}

/** A deterministic byte source for the equivalence check. */
function counterRng(seed: number): Rng {
  let x = seed >>> 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      out[i] = x >>> 24;
    }
    return out;
  };
}

/** Shannon entropy (bits) of the byte values at one offset across packets. */
function offsetEntropy(packets: readonly Buffer[], offset: number): number {
  const counts = new Map<number, number>();
  for (const p of packets) counts.set(p[offset]!, (counts.get(p[offset]!) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) {
    const q = c / packets.length;
    h -= q * Math.log2(q);
  }
  return h;
}

function mostCommon(keys: readonly string[]): [string, number] {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return [...m.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]!;
}

test('the recording salt factory is byte-identical to the shipped makeShapedSalt', () => {
  for (const seed of [1, 2, 3]) {
    const a = makeShapedSalt(32, { rng: counterRng(seed) });
    const b = recordingShapedSalt([], counterRng(seed))(32);
    assert.deepEqual(b, a);
  }
});

test('D1/D3 vs C6 (deterministic): shaped 0 triggers in 1,000 connections, unshaped >= 98 % blocked; shaped first packets have no constant offset and no recurring prefix', async () => {
  const lab = await startShapingWorld({ method: METHOD, secret: PASSWORD }, 1);
  const { world, firstChunks } = lab;
  const echo = { port: lab.echoPort };
  const t0 = Date.now();
  try {
    const front = { tcp: lab.front };
    const ep = { host: front.tcp.host, port: front.tcp.port, method: METHOD, password: PASSWORD };

    // ---- shaped arm: 1,000 connections ----
    const prefixes: Buffer[] = [];
    const shaped = new ShadowsocksDialer({
      ...ep,
      saltFactory: recordingShapedSalt(prefixes),
      firstWrite: encodeFirstWrite,
    });
    const seqShapedStart = world.log.records.length;
    let shapedOk = 0;
    await pool(N, CONCURRENCY, async () => {
      if (await echoOnce(shaped, echo.port, 5000)) shapedOk++;
    });
    const shapedDecisions = world.log.records.slice(seqShapedStart).filter((d) => d.behaviour === 'C6');
    assert.equal(shapedDecisions.length, N, 'C6 judged every shaped first packet');
    assert.equal(shapedDecisions.filter((d) => d.action === 'DROP_C2S').length, 0, '0 C6 triggers');
    assert.equal(shapedOk, N, 'every shaped connection echoed');
    assert.equal(prefixes.length, N);

    // First packets as the censor saw them, in flow order.
    const shapedPackets = [...firstChunks.values()];
    assert.equal(shapedPackets.length, N);
    const entropies = Array.from({ length: 16 }, (_, i) => offsetEntropy(shapedPackets, i));
    for (let i = 0; i < 16; i++) {
      assert.ok(entropies[i]! > 4, `offset ${i}: ${entropies[i]!.toFixed(2)} bits`);
      assert.ok(new Set(shapedPackets.map((p) => p[i])).size > 1, `offset ${i} not constant`);
    }
    const [topPrefix, topPrefixCount] = mostCommon(prefixes.map((p) => p.toString('hex')));
    assert.ok(topPrefixCount <= N / 100, `most common prefix ${topPrefix} x${topPrefixCount}`);
    const [top6, top6Count] = mostCommon(shapedPackets.map((p) => p.subarray(0, 6).toString('hex')));
    const lengths = shapedPackets.map((p) => p.length);
    // D3: no shaped first packet falls in the prober's length trigger (160-999, mod 16 in {2, 9}).
    assert.equal(lengths.filter(inProberTrigger).length, 0, 'no shaped first packet in the prober trigger');
    console.log(
      `# shaped: ${N} connections, 0 C6 triggers; per-offset entropy 0-15 min ${Math.min(...entropies).toFixed(2)} bits ` +
        `(max ${Math.max(...entropies).toFixed(2)}); most common prefix x${topPrefixCount}; most common leading 6 bytes ` +
        `${top6} (${JSON.stringify(Buffer.from(top6, 'hex').toString('latin1'))}) x${top6Count}; first-packet lengths ` +
        `${Math.min(...lengths)}-${Math.max(...lengths)}, none in the prober trigger; mean whole-packet entropy ${(shapedPackets.reduce((a, p) => a + shannonEntropy(p), 0) / N).toFixed(2)} bits/byte`,
    );

    // ---- unshaped arm (negative control): 1,000 connections ----
    firstChunks.clear();
    const unshaped = new ShadowsocksDialer(ep);
    const seqUnshapedStart = world.log.records.length;
    await pool(N, CONCURRENCY, async () => {
      await echoOnce(unshaped, echo.port, 5000);
    });
    const unshapedPackets = [...firstChunks.values()];
    const ud = world.log.records.slice(seqUnshapedStart).filter((d) => d.behaviour === 'C6');
    assert.equal(ud.length, N, 'C6 judged every unshaped first packet');
    const blocked = ud.filter((d) => d.action === 'DROP_C2S').length;
    const exempt = ud.filter((d) => d.action === 'PASS');
    const exName = (f: Record<string, unknown>): string =>
      ['ex1', 'ex2', 'ex3', 'ex4', 'ex5'].filter((e) => f[e] === true).join('+');
    for (const d of exempt) {
      assert.equal(d.features.eligible, false);
      assert.notEqual(
        exName(d.features),
        '',
        `exempt by chance through an Ex rule: ${JSON.stringify(d.features)}`,
      );
    }
    assert.ok(blocked >= 0.98 * N, `unshaped blocked ${blocked}/${N}`);
    console.log(
      `# unshaped: ${blocked}/${N} blocked by C6 (${((100 * blocked) / N).toFixed(1)} %); ${exempt.length} exempt, ` +
        `by ${exempt.map((d) => exName(d.features)).join(', ') || 'none'}; ` +
        `${unshapedPackets.filter((p) => inProberTrigger(p.length)).length} first packets in the prober's length trigger`,
    );

    // ---- the shipped client, end to end through SOCKS5: 100 connections ----
    const client = await startClient({
      socks: { host: '127.0.0.1', port: 0 },
      key: { host: front.tcp.host, port: front.tcp.port, method: METHOD, password: PASSWORD },
    });
    try {
      const socks = { host: '127.0.0.1', port: client.socksAddress!.port };
      const seq = world.log.records.length;
      let ok = 0;
      await pool(N_CLIENT, 8, async () => {
        const s: net.Socket = await socksConnect(socks, { host: '127.0.0.1', port: echo.port });
        const data = randomBytes(48);
        const got = await new Promise<boolean>((resolve) => {
          let buf = Buffer.alloc(0);
          const t = setTimeout(() => resolve(false), 5000);
          s.on('error', () => resolve(false));
          s.on('data', (c: Buffer) => {
            buf = Buffer.concat([buf, c]);
            if (buf.length >= data.length) {
              clearTimeout(t);
              resolve(buf.equals(data));
            }
          });
          s.write(data);
        });
        s.destroy();
        if (got) ok++;
      });
      const d = world.log.records.slice(seq).filter((x) => x.behaviour === 'C6');
      assert.equal(d.length, N_CLIENT);
      assert.equal(
        d.filter((x) => x.action === 'DROP_C2S').length,
        0,
        'startClient (default shaping): 0 C6 triggers',
      );
      assert.equal(ok, N_CLIENT);
    } finally {
      await client.close();
    }
    console.log(`# ${2 * N + N_CLIENT} connections through the lab in ${Date.now() - t0} ms`);
  } finally {
    await lab.close();
  }
});

test('D1/D3 with a 16-byte salt (aes-128-gcm, prefix <= 6 bytes): 1,000 shaped connections, 0 C6 triggers, no constant offset, no recurring prefix', async () => {
  const method = 'aes-128-gcm';
  const lab = await startShapingWorld({ method, secret: PASSWORD }, 2);
  const { world } = lab;
  const echo = { port: lab.echoPort };
  const front = { tcp: lab.front };
  try {
    const prefixes: Buffer[] = [];
    const shaped = new ShadowsocksDialer({
      host: front.tcp.host,
      port: front.tcp.port,
      method,
      password: PASSWORD,
      saltFactory: recordingShapedSalt(prefixes),
      firstWrite: encodeFirstWrite,
    });
    let ok = 0;
    await pool(N, CONCURRENCY, async () => {
      if (await echoOnce(shaped, echo.port, 5000)) ok++;
    });
    const d = world.log.filter({ behaviour: 'C6' });
    assert.equal(d.length, N);
    assert.equal(d.filter((x) => x.action === 'DROP_C2S').length, 0, '0 C6 triggers');
    assert.equal(ok, N);
    assert.ok(
      prefixes.every((p) => p.length <= 6),
      'prefix budget of a 16-byte salt',
    );
    const firstChunks = [...lab.firstChunks.values()];
    const entropies = Array.from({ length: 16 }, (_, i) => offsetEntropy(firstChunks, i));
    for (let i = 0; i < 16; i++)
      assert.ok(entropies[i]! > 4, `offset ${i}: ${entropies[i]!.toFixed(2)} bits`);
    const [, topPrefixCount] = mostCommon(prefixes.map((p) => p.toString('hex')));
    // <= 2.5 %, not the generator's 1 % bar: see the header (P = 1.5e-3 a run at 1 %).
    assert.ok(topPrefixCount <= N / 40, `most common prefix x${topPrefixCount}`);
    const [top6, top6Count] = mostCommon(firstChunks.map((p) => p.subarray(0, 6).toString('hex')));
    assert.equal(firstChunks.map((p) => p.length).filter(inProberTrigger).length, 0);
    console.log(
      `# shaped ${method}: ${N} connections, 0 C6 triggers; per-offset entropy 0-15 min ${Math.min(...entropies).toFixed(2)} bits; ` +
        `most common prefix x${topPrefixCount}; most common leading 6 bytes ${top6} ` +
        `(${JSON.stringify(Buffer.from(top6, 'hex').toString('latin1'))}) x${top6Count}`,
    );
  } finally {
    await lab.close();
  }
});
