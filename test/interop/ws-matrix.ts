/**
 * Shared body of the WebSocket interop tests: given a SOCKS5 port whose traffic reaches the
 * fixtures through some client → Ladder-over-WebSocket pairing, upload and download a body and
 * compare sha256 at the far end, then a few short echo connections.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Peer } from '../helpers/peers.js';
import { downloadVia, echoVia, uploadVia } from '../helpers/transfer.js';
import { waitFor } from '../helpers/wait.js';
import type { useFixtures } from './matrix.js';

export const MiB = 1024 * 1024;

type Fixtures = ReturnType<typeof useFixtures>;

export function diagnose(peers: readonly Peer[]): string {
  return peers
    .map((p) => `--- ${p.name} (pid ${p.pid}${p.exited ? ', EXITED' : ''}) ---\n${p.output().slice(-3000)}`)
    .join('\n');
}

/** Run `fn`; on failure append the peers' output to the error. */
export async function withPeers<T>(peers: readonly Peer[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    (err as Error).message += `\n${diagnose(peers)}`;
    throw err;
  }
}

/** A SIP003 plugin listens a moment after its ss-local: wait until a tiny echo goes through. */
export async function waitUntilUsable(
  socksPort: number,
  fx: Fixtures,
  peers: readonly Peer[],
): Promise<void> {
  await withPeers(peers, () =>
    waitFor(
      async () => {
        try {
          const r = await echoVia(
            { proxyPort: socksPort },
            { host: '127.0.0.1', port: fx.echo.port },
            Buffer.from('ping'),
            3000,
          );
          return r.bytes === 4;
        } catch {
          return false;
        }
      },
      { timeoutMs: 20_000, intervalMs: 200, message: 'a first echo through the WebSocket' },
    ),
  );
}

export async function transferBothWays(
  socksPort: number,
  size: number,
  fx: Fixtures,
  peers: readonly Peer[],
): Promise<void> {
  const body = randomBytes(size);
  const up = await withPeers(peers, () =>
    uploadVia({ proxyPort: socksPort }, { host: '127.0.0.1', port: fx.sink.port }, body),
  );
  assert.equal(
    up.reply.toString('hex'),
    up.sentSha.toString('hex'),
    'sink sha256 differs from what was sent',
  );
  const down = await withPeers(peers, () =>
    downloadVia({ proxyPort: socksPort }, { host: '127.0.0.1', port: fx.source.port }, size),
  );
  assert.equal(down.bytes, size + 32);
  assert.equal(down.gotSha.toString('hex'), down.sourceSha.toString('hex'), 'download sha256 differs');
}

/** `n` short echo connections in a row. */
export async function shortConnections(
  socksPort: number,
  n: number,
  fx: Fixtures,
  peers: readonly Peer[],
): Promise<void> {
  for (let i = 0; i < n; i++) {
    const body = randomBytes(100 + i);
    const r = await withPeers(peers, () =>
      echoVia({ proxyPort: socksPort }, { host: '127.0.0.1', port: fx.echo.port }, body, 10_000),
    );
    assert.equal(r.gotSha.toString('hex'), r.sentSha.toString('hex'));
  }
}

/**
 * The body of one WebSocket interop suite (call inside a describe): `setup` starts the peers
 * (pushing each onto `peers`, stopped afterwards) and returns the SOCKS port to test through;
 * then `size` bytes up and down, and `shorts` short connections. Further tests may follow.
 */
export function wsInteropSuite(
  fx: Fixtures,
  o: { size: number; shorts?: number; setup(peers: Peer[]): Promise<number>; teardown?(): Promise<void> },
): { socksPort(): number } {
  const peers: Peer[] = [];
  let port = 0;
  const shorts = o.shorts ?? 10;
  before(async () => {
    port = await o.setup(peers);
    await waitUntilUsable(port, fx, peers);
  });
  after(async () => {
    await Promise.all(peers.map((p) => p.stop()));
    await o.teardown?.();
  });
  test(`${o.size / MiB} MiB up and down arrive byte-identical`, async () => {
    await transferBothWays(port, o.size, fx, peers);
  });
  test(`${shorts} short connections in a row`, async () => {
    await shortConnections(port, shorts, fx, peers);
  });
  return { socksPort: () => port };
}
