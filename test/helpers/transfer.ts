/**
 * Bulk transfers through a SOCKS5 proxy against the sink / source / echo fixtures in net.ts.
 * Each returns what the far end saw so the caller can compare hashes.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { sha256, Sha256Counter } from './hash.js';
import { readExactly, u64 } from './net.js';
import { socks5Connect } from './socks5.js';

export interface Via {
  proxyPort: number;
  proxyHost?: string;
}

export interface Target {
  host: string;
  port: number;
}

/** Write `body` (or `size` bytes of a repeated block) with back-pressure. */
function writeAll(s: net.Socket, chunks: Iterable<Buffer>): Promise<void> {
  return new Promise((resolve, reject) => {
    const it = chunks[Symbol.iterator]();
    const onError = (e: Error): void => reject(e);
    s.once('error', onError);
    const pump = (): void => {
      for (;;) {
        const n = it.next();
        if (n.done) {
          s.off('error', onError);
          resolve();
          return;
        }
        if (!s.write(n.value)) {
          s.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

function* slices(body: Buffer, size = 64 * 1024): Generator<Buffer> {
  for (let i = 0; i < body.length; i += size) yield body.subarray(i, Math.min(i + size, body.length));
}

function* repeated(block: Buffer, total: number): Generator<Buffer> {
  let left = total;
  while (left > 0) {
    const n = Math.min(block.length, left);
    yield n === block.length ? block : block.subarray(0, n);
    left -= n;
  }
}

export interface UploadResult {
  sentSha: Buffer;
  /** The sink's digest (hash mode) or [0x06] (count mode). */
  reply: Buffer;
  ms: number;
}

/** Upload `body` to a hashing sink via SOCKS5; resolves with both hashes. */
export async function uploadVia(
  via: Via,
  sink: Target,
  body: Buffer,
  timeoutMs = 60_000,
): Promise<UploadResult> {
  const t0 = performance.now();
  const s = await socks5Connect({ ...via, ...sink, timeoutMs });
  try {
    const replyP = readExactly(s, 32, timeoutMs);
    await writeAll(s, [u64(body.length), ...slices(body)]);
    const reply = await replyP;
    return { sentSha: sha256(body), reply, ms: performance.now() - t0 };
  } finally {
    s.destroy();
  }
}

/** Upload `total` bytes of a repeated random block to a counting sink (no hashing), for benchmarks. */
export async function uploadCountVia(
  via: Via,
  sink: Target,
  total: number,
  timeoutMs = 600_000,
): Promise<number> {
  const block = randomBytes(256 * 1024);
  const s = await socks5Connect({ ...via, ...sink, timeoutMs: 10_000 });
  try {
    const t0 = performance.now();
    const replyP = readExactly(s, 1, timeoutMs);
    await writeAll(s, [u64(total), ...repeated(block, total)]);
    await replyP;
    return performance.now() - t0;
  } finally {
    s.destroy();
  }
}

export interface DownloadResult {
  gotSha: Buffer;
  /** The digest the source appended. */
  sourceSha: Buffer;
  bytes: number;
  ms: number;
}

/** Download `n` bytes (+32-byte digest) from a hashing source via SOCKS5. */
export function downloadVia(
  via: Via,
  source: Target,
  n: number,
  timeoutMs = 60_000,
): Promise<DownloadResult> {
  return downloadImpl(via, source, n, true, timeoutMs);
}

/** Download `n` bytes from a non-hashing source; resolves with elapsed ms of the body. */
export async function downloadCountVia(
  via: Via,
  source: Target,
  n: number,
  timeoutMs = 600_000,
): Promise<number> {
  return (await downloadImpl(via, source, n, false, timeoutMs)).ms;
}

async function downloadImpl(
  via: Via,
  source: Target,
  n: number,
  hashed: boolean,
  timeoutMs: number,
): Promise<DownloadResult> {
  const s = await socks5Connect({ ...via, ...source, timeoutMs: 10_000 });
  const t0 = performance.now();
  try {
    return await new Promise<DownloadResult>((resolve, reject) => {
      const h = new Sha256Counter();
      const tail: Buffer[] = [];
      let got = 0;
      const want = n + (hashed ? 32 : 0);
      const timer = setTimeout(
        () => finish(new Error(`download timed out after ${got} of ${want} bytes`)),
        timeoutMs,
      );
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        s.removeAllListeners('data');
        if (err) return reject(err);
        const t = Buffer.concat(tail);
        resolve({
          gotSha: hashed ? h.digest() : Buffer.alloc(0),
          sourceSha: t,
          bytes: got,
          ms: performance.now() - t0,
        });
      };
      s.on('data', (c: Buffer) => {
        const bodyLeft = n - Math.min(got, n);
        if (hashed) {
          if (bodyLeft > 0) h.update(c.length > bodyLeft ? c.subarray(0, bodyLeft) : c);
          if (c.length > bodyLeft) tail.push(c.subarray(bodyLeft));
        }
        got += c.length;
        if (got > want) finish(new Error(`source sent ${got} bytes, more than ${want}`));
        else if (got === want) finish();
      });
      s.once('end', () => {
        if (got < want) finish(new Error(`stream ended after ${got} of ${want} bytes`));
      });
      s.once('error', (e) => finish(e));
      s.write(u64(n));
      s.resume();
    });
  } finally {
    s.destroy();
  }
}

export interface EchoResult {
  sentSha: Buffer;
  gotSha: Buffer;
  bytes: number;
}

/** Send `body` to an echo server via SOCKS5 while reading it back (full duplex); compare hashes. */
export async function echoVia(via: Via, echo: Target, body: Buffer, timeoutMs = 60_000): Promise<EchoResult> {
  const s = await socks5Connect({ ...via, ...echo, timeoutMs });
  try {
    const got = new Sha256Counter();
    const back = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`echo timed out after ${got.bytes} of ${body.length}`)),
        timeoutMs,
      );
      s.on('data', (c: Buffer) => {
        got.update(c);
        if (got.bytes >= body.length) {
          clearTimeout(timer);
          resolve();
        }
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      s.once('close', () => {
        clearTimeout(timer);
        if (got.bytes < body.length) reject(new Error(`echo closed after ${got.bytes} of ${body.length}`));
      });
      s.resume();
    });
    await writeAll(s, slices(body));
    await back;
    return { sentSha: sha256(body), gotSha: got.digest(), bytes: got.bytes };
  } finally {
    s.destroy();
  }
}
