/**
 * Active-probing suite against the Ladder server (docs/glossary.md C7, D6), with the server's idle
 * timeout shortened for the test. For every probe the server must send nothing, close only at
 * its idle timeout (or promptly, with FIN, when the prober half-closes), always with FIN and
 * never RST, and its time-to-close must not depend on the probe length. The same prober and
 * judge() catch the naive servers in controls.test.ts, so a pass here means something.
 *
 * Probes: random (NR) of lengths 1..100 and 221; identical (R1) and byte-altered (R2 byte 0,
 * R3 bytes 0-7 and 62-63, R4 byte 16) replays of a real Ladder client's first packet, captured
 * by a recording forwarder; a replay of the whole first flight; and the server's own response
 * reflected back at it. Meanwhile an honest client keeps using the same port.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { startDataPlane, type DataPlane } from '../../src/server/index.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import type { TestServer } from '../helpers/net.js';
import { readExactly, startEcho } from '../helpers/net.js';
import { ssUrl } from '../helpers/peers.js';
import type { Recorder } from '../helpers/recorder.js';
import { startRecorder } from '../helpers/recorder.js';
import { socks5Connect } from '../helpers/socks5.js';
import type { Policy, Probe, ProbeResult } from './prober.js';
import { judge, randomProbes, replayProbes, runProbes, summarise } from './prober.js';

const IDLE_MS = 2000;
/** Without half-close: close at the idle timeout, not before; allow scheduling slack after. */
const IDLE_POLICY: Policy = { minCloseMs: IDLE_MS - 50, maxCloseMs: IDLE_MS + 1500, maxBucketSpreadMs: 300 };
/** With half-close: a prompt FIN, the same for every length. */
const HALF_CLOSE_POLICY: Policy = { minCloseMs: 0, maxCloseMs: 1500, maxBucketSpreadMs: 300 };
const CONCURRENCY = 20;

const PASSWORD = `probe-${randomBytes(6).toString('hex')}`;

let echo: TestServer;
let single: DataPlane; // one chacha20-ietf-poly1305 key
let multi: DataPlane; // three keys, all three methods, on one port
let mixed: DataPlane; // SIP004 and SIP022 (2022-blake3) keys on one port
let socksPort = 0;

async function honestExchange(size = 4096): Promise<void> {
  const body = randomBytes(size);
  const s = await socks5Connect({
    proxyPort: socksPort,
    host: '127.0.0.1',
    port: echo.port,
    timeoutMs: 5000,
  });
  try {
    const p = readExactly(s, body.length, 5000);
    s.write(body);
    assert.ok((await p).equals(body), 'honest echo came back different');
  } finally {
    s.destroy();
  }
}

function pearson(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
    syy += (ys[i]! - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? 0 : sxy / Math.sqrt(sxx * syy);
}

function report(name: string, results: ProbeResult[], policy: Policy): string[] {
  const j = judge(results, policy);
  const nr = results.filter((r) => r.label.startsWith('NR'));
  const r =
    nr.length > 2
      ? pearson(
          nr.map((x) => x.length),
          nr.map((x) => x.ms),
        )
      : 0;
  console.log(`${summarise(name, results, j)}, pearson(length, ms) over NR ${r.toFixed(2)}`);
  for (const v of j.violations.slice(0, 10)) console.log(`  violation: ${v}`);
  return j.violations;
}

let captured: Captured;

before(async () => {
  echo = await startEcho();
  const key = (id: string, method: string): RuntimeKey => ({ id, method, secret: `${PASSWORD}-${id}` });
  single = await startDataPlane({
    keys: [key('c', 'chacha20-ietf-poly1305')],
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    timeouts: { idleMs: IDLE_MS },
  });
  multi = await startDataPlane({
    keys: [key('a128', 'aes-128-gcm'), key('a256', 'aes-256-gcm'), key('c', 'chacha20-ietf-poly1305')],
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    timeouts: { idleMs: IDLE_MS },
  });
  mixed = await startDataPlane({
    keys: [
      key('c', 'chacha20-ietf-poly1305'),
      { id: 'n256', method: '2022-blake3-aes-256-gcm', secret: randomBytes(32).toString('base64') },
      { id: 'n128', method: '2022-blake3-aes-128-gcm', secret: randomBytes(16).toString('base64') },
    ],
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    timeouts: { idleMs: IDLE_MS },
  });
  captured = await capture(single.address.port, cleanups);
});

interface Captured {
  clientFirst: Buffer;
  clientFlight: Buffer;
  serverFirst: Buffer;
}

const cleanups: Array<() => Promise<void>> = [];

/**
 * Run a real Ladder client through a recording forwarder to the server on `port`, make one
 * honest exchange and return the recorded first flights. The payload is itself a valid target
 * header (ATYP 1, 127.0.0.1, the echo port) followed by data. The echo returns it, so the
 * server's first response chunk decrypts (same key, fresh nonce) to a valid target header: a
 * server that does not recognise its own salt coming back would connect and answer.
 */
async function capture(port: number, cleanup: Array<() => Promise<void>>): Promise<Captured> {
  const rec: Recorder = await startRecorder(port);
  const cl: LocalClient = await startClient({
    key: ssUrl('chacha20-ietf-poly1305', `${PASSWORD}-c`, '127.0.0.1', rec.port),
    socks: '127.0.0.1:0',
  });
  cleanup.push(
    () => cl.close(),
    () => rec.close(),
  );
  socksPort ||= cl.socksAddress!.port;
  const header = Buffer.from([1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff]);
  const payload = Buffer.concat([header, Buffer.from('reflected request\n')]);
  const s = await socks5Connect({
    proxyPort: cl.socksAddress!.port,
    host: '127.0.0.1',
    port: echo.port,
    earlyData: payload,
  });
  const back = await readExactly(s, payload.length, 5000);
  assert.ok(back.equals(payload));
  s.destroy();
  await new Promise((r) => setTimeout(r, 100));
  const c = rec.connections.at(-1)!;
  assert.ok(c.clientFirst && c.serverFirst, 'recorder saw both directions');
  return { clientFirst: c.clientFirst, clientFlight: c.clientBytes, serverFirst: c.serverFirst };
}

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await Promise.all([single?.close(), multi?.close(), mixed?.close(), echo?.close()]);
});

function replaysOf(c: Captured): Probe[] {
  return [
    ...replayProbes(c.clientFirst, 'client first packet'),
    { label: 'client first flight, identical replay', payload: c.clientFlight },
    { label: "server's own response reflected", payload: c.serverFirst },
  ];
}

function allProbes(): Probe[] {
  return [...randomProbes(randomBytes), ...replaysOf(captured)];
}

describe('active probing: Ladder server', { concurrency: true }, () => {
  test('captured a real first packet (salt + header + data in one write)', () => {
    // 32-byte salt + 18-byte sealed length + (7-byte target + 25 bytes of payload + 16-byte tag).
    assert.ok(
      captured.clientFirst.length > 32 + 18 + 16,
      `first packet only ${captured.clientFirst.length} bytes`,
    );
    assert.ok(captured.serverFirst.length > 32 + 18 + 16);
  });

  test('single-key server: every probe gets no data and a FIN at the idle timeout, length-independent', async () => {
    const probes = allProbes();
    const honest = honestLoop();
    const results = await runProbes(single.address.port, probes, {
      giveUpMs: IDLE_MS + 5000,
      concurrency: CONCURRENCY,
    });
    const h = await honest.stop();
    const v = report('single-key, idle', results, IDLE_POLICY);
    assert.deepEqual(v, []);
    assert.ok(
      h.ok >= 5 && h.failed === 0,
      `honest client during probing: ${h.ok} ok, ${h.failed} failed (${h.lastError})`,
    );
  });

  test('multi-key server (aes-128-gcm, aes-256-gcm, chacha20): random probes get the same reaction', async () => {
    const results = await runProbes(multi.address.port, randomProbes(randomBytes), {
      giveUpMs: IDLE_MS + 5000,
      concurrency: CONCURRENCY,
    });
    assert.deepEqual(report('multi-key, idle', results, IDLE_POLICY), []);
  });

  test('mixed SIP004 + SIP022 keys on one port: random probes get the same reaction, idle and half-closed', async () => {
    const idle = await runProbes(mixed.address.port, randomProbes(randomBytes), {
      giveUpMs: IDLE_MS + 5000,
      concurrency: CONCURRENCY,
    });
    const half = await runProbes(mixed.address.port, randomProbes(randomBytes), {
      giveUpMs: IDLE_MS + 5000,
      halfClose: true,
      concurrency: CONCURRENCY,
    });
    assert.deepEqual(report('mixed 2017/2022 keys, idle', idle, IDLE_POLICY), []);
    assert.deepEqual(report('mixed 2017/2022 keys, half-close', half, HALF_CLOSE_POLICY), []);
  });

  // Bytes do not extend the pre-relay deadline (a trickling client cannot hold a connection):
  // FIN one idle timeout after the first byte; after the prober's own FIN, a prompt FIN.
  test('one byte at a time (10 ms apart): no data, FIN one idle timeout after the first byte', async () => {
    const probes: Probe[] = [10, 40, 49, 50, 51, 80].map((n) => ({
      label: `trickle len=${n}`,
      payload: randomBytes(n),
    }));
    probes.push({ label: 'trickle R1 replay', payload: captured.clientFirst });
    const results = await runProbes(single.address.port, probes, {
      giveUpMs: IDLE_MS + 5000,
      trickleMs: 10,
      fromFirstByte: true,
      concurrency: CONCURRENCY,
    });
    // Half-close: the prober's FIN must come before the deadline counted from the first byte,
    // so these trickle faster (98 bytes ~0.4 s, room for a loaded machine's timer lag under 2 s).
    const half = await runProbes(single.address.port, probes, {
      giveUpMs: IDLE_MS + 5000,
      trickleMs: 4,
      halfClose: true,
      concurrency: CONCURRENCY,
    });
    // Few probes per length bucket here: judge uniformity of kind and timing, not the spread.
    assert.deepEqual(
      report('single-key, trickled', results, { ...IDLE_POLICY, maxBucketSpreadMs: 1000 }),
      [],
    );
    assert.deepEqual(
      report('single-key, trickled + half-close', half, { ...HALF_CLOSE_POLICY, maxBucketSpreadMs: 1000 }),
      [],
    );
  });

  test('prober half-closes after sending: a prompt FIN for every probe and length', async () => {
    const probes = allProbes();
    const results = await runProbes(single.address.port, probes, {
      giveUpMs: IDLE_MS + 5000,
      halfClose: true,
      concurrency: CONCURRENCY,
    });
    const results2 = await runProbes(multi.address.port, randomProbes(randomBytes), {
      giveUpMs: IDLE_MS + 5000,
      halfClose: true,
      concurrency: CONCURRENCY,
    });
    assert.deepEqual(report('single-key, half-close', results, HALF_CLOSE_POLICY), []);
    assert.deepEqual(report('multi-key, half-close', results2, HALF_CLOSE_POLICY), []);
  });
});

describe('negative control: the same replays against a server with its replay defences switched off', () => {
  test('R1 and the reflected response are caught as DATA', async () => {
    const weak = await startDataPlane({
      keys: [{ id: 'c', method: 'chacha20-ietf-poly1305', secret: `${PASSWORD}-c` }],
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
      timeouts: { idleMs: IDLE_MS },
    });
    try {
      const c = await capture(weak.address.port, cleanups);
      // Defences off: every salt looks new, and the server's own salts are forgotten.
      weak.server.clientSalts.checkAndAdd = () => true;
      weak.server.serverSalts.has = () => false;
      const results = await runProbes(weak.address.port, replaysOf(c), {
        giveUpMs: IDLE_MS + 5000,
        concurrency: CONCURRENCY,
      });
      const v = report('defences off (negative control)', results, IDLE_POLICY);
      const data = v.filter((x) => x.includes('(DATA)'));
      assert.ok(
        data.some((x) => x.includes('R1 identical replay')),
        'R1 replay answered with data',
      );
      assert.ok(
        data.some((x) => x.includes('reflected')),
        'reflected server response answered with data',
      );
    } finally {
      await weak.close();
    }
  });
});

/** An honest client that keeps exchanging data through the same server port until stopped. */
function honestLoop(): { stop(): Promise<{ ok: number; failed: number; lastError: string }> } {
  let running = true;
  let ok = 0;
  let failed = 0;
  let lastError = '';
  const loop = (async () => {
    while (running) {
      try {
        await honestExchange();
        ok++;
      } catch (err) {
        failed++;
        lastError = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { ok, failed, lastError };
    },
  };
}
