// The TLS 1.3 client's ClientHello (src/protocol/tls13/client-hello.ts) against the hello Debian's
// Chromium sends (headless, to a loopback listener that keeps its first record): the same cipher
// suites, extension set, signature algorithms, versions, ALPN, ALPS, certificate compression,
// trust anchors and ECH GREASE layout, GREASE in the same places — and, named here as the one
// difference, no X25519MLKEM768 in supported_groups and key_share (Node 20 has no ML-KEM).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseClientHelloRecord } from '../../src/protocol/tls/clienthello.js';
import { Reader, readExtensions } from '../../src/protocol/tls13/messages.js';
import { ClientHandshake } from '../../src/transport/tls13/handshake.js';
import { which } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';

const X25519MLKEM768 = 0x11ec;
const isGrease = (v: number): boolean => (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);
const norm = (v: number): number => (isGrease(v) ? 0x0a0a : v);

/** Chromium's first record to https://site.test:PORT/ (resolved to a loopback listener). */
function chromiumHello(): Promise<Buffer> {
  const profile = mkdtempSync(join(tmpdir(), 'ladder-chromium-'));
  return new Promise<Buffer>((resolve, reject) => {
    let child: ReturnType<typeof spawn> | undefined;
    const done = (err: Error | undefined, hello?: Buffer): void => {
      clearTimeout(timer);
      srv.close();
      // Chromium's helpers write to the profile until they are gone (their own group: all of
      // them killed); removing it while they wrote failed with ENOTEMPTY in CI.
      const removeProfile = (): void => {
        try {
          rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
        } catch {
          // a leftover temporary directory is not this test's failure
        }
      };
      if (child?.pid !== undefined && child.exitCode === null) {
        child.once('exit', () => setTimeout(removeProfile, 200));
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      } else removeProfile();
      if (err) reject(err);
      else resolve(hello!);
    };
    const timer = setTimeout(() => done(new Error('chromium sent no ClientHello in 30 s')), 30_000);
    const srv = net.createServer((s) => {
      let buf = Buffer.alloc(0);
      s.on('error', () => {});
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
          s.destroy();
          done(undefined, buf.subarray(0, 5 + buf.readUInt16BE(3)));
        }
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      child = spawn(
        'chromium',
        [
          '--headless=new',
          '--no-sandbox',
          '--disable-gpu',
          `--user-data-dir=${profile}`,
          '--host-resolver-rules=MAP site.test 127.0.0.1',
          `https://site.test:${port}/`,
        ],
        { stdio: 'ignore', detached: true },
      );
      child.on('error', (err) => done(err));
    });
  });
}

interface Hello {
  suites: number[];
  order: number[];
  exts: Map<number, Buffer>;
}

function dissect(record: Buffer): Hello {
  const order = [...parseClientHelloRecord(record).extensions];
  const r = new Reader(record.subarray(9), 'ClientHello');
  r.u16();
  r.bytes(32);
  assert.equal(r.vec(1).length, 32, 'a 32-byte session id');
  const s = new Reader(r.vec(2), 'suites');
  const suites: number[] = [];
  while (s.left > 0) suites.push(s.u16());
  assert.deepEqual([...r.vec(1)], [0]);
  return { suites, order, exts: readExtensions(r, 'ClientHello') };
}

/** A u16 list inside an extension body after a `lenBytes` length. */
function u16s(body: Buffer, lenBytes: 1 | 2): number[] {
  const r = new Reader(new Reader(body, 'ext').vec(lenBytes), 'list');
  const out: number[] = [];
  while (r.left > 0) out.push(r.u16());
  return out;
}

function keyShareGroups(body: Buffer): number[] {
  const r = new Reader(new Reader(body, 'key_share').vec(2), 'shares');
  const out: number[] = [];
  while (r.left > 0) {
    out.push(r.u16());
    r.vec(2);
  }
  return out;
}

test(
  'our ClientHello has the shape of Chromium’s (but for X25519MLKEM768)',
  { skip: skipUnless(which('chromium') !== undefined, 'chromium missing (apt-get install chromium)') },
  async () => {
    const chrome = dissect(await chromiumHello());
    const ours = dissect(new ClientHandshake({ serverName: 'site.test', certificate: {} }).start());

    assert.deepEqual(ours.suites.map(norm), chrome.suites.map(norm), 'cipher suites');
    assert.ok(isGrease(ours.order[0]!) && isGrease(chrome.order[0]!), 'GREASE extension first');
    assert.ok(isGrease(ours.order.at(-1)!) && isGrease(chrome.order.at(-1)!), 'GREASE extension last');
    const set = (h: Hello): number[] => h.order.map(norm).sort((a, b) => a - b);
    assert.deepEqual(set(ours), set(chrome), 'extension set');

    const body = (h: Hello, t: number): Buffer => h.exts.get(t)!;
    // Extensions whose bodies are the same bytes in both.
    for (const t of [0, 5, 11, 16, 17613, 18, 23, 27, 35, 45, 0xca34, 0xff01])
      assert.equal(body(ours, t).toString('hex'), body(chrome, t).toString('hex'), `extension ${t}`);
    for (const [t, len] of [
      [13, 2],
      [43, 1],
    ] as const)
      assert.deepEqual(
        u16s(body(ours, t), len).map(norm),
        u16s(body(chrome, t), len).map(norm),
        `extension ${t}`,
      );
    // The one difference: Chrome's post-quantum group and its key share.
    const withoutPq = (l: number[]): number[] => l.filter((g) => g !== X25519MLKEM768).map(norm);
    assert.deepEqual(
      u16s(body(ours, 10), 2).map(norm),
      withoutPq(u16s(body(chrome, 10), 2)),
      'supported_groups',
    );
    assert.deepEqual(
      keyShareGroups(body(ours, 51)).map(norm),
      withoutPq(keyShareGroups(body(chrome, 51))),
      'key_share',
    );
    assert.ok(
      u16s(body(chrome, 10), 2).includes(X25519MLKEM768),
      'Chromium offers X25519MLKEM768 (which we cannot)',
    );
    // ECH GREASE: outer type, HKDF-SHA256, AES-128-GCM, a config id, a 32-byte enc, a payload.
    for (const h of [ours, chrome]) {
      const ech = body(h, 0xfe0d);
      assert.equal(ech.subarray(0, 5).toString('hex'), '0000010001');
      assert.equal(ech.readUInt16BE(6), 32);
      assert.equal(ech.readUInt16BE(40) + 42, ech.length);
    }
    assert.equal(body(ours, ours.order[0]!).length, 0);
    assert.equal(body(ours, ours.order.at(-1)!).toString('hex'), '00');
  },
);
