/**
 * The interop matrix shared by the interop test files: for one (client, server) pairing and one
 * cipher, start both as real processes, then push an 8 MiB random body each way through the
 * SOCKS5 inbound and compare sha256 at the far end; also one domain-name destination.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { TestServer } from '../helpers/net.js';
import { startEcho, startSink, startSource } from '../helpers/net.js';
import type { Method, Peer } from '../helpers/peers.js';
import {
  peerSkip,
  ssUrl,
  startLadderClient,
  startLadderServer,
  startSsLocal,
  startSsServer,
} from '../helpers/peers.js';
import { downloadVia, echoVia, uploadVia } from '../helpers/transfer.js';

export type Side = 'libev' | 'ladder';

const MiB = 1024 * 1024;
export const BODY_SIZE = 8 * MiB;

interface Fixtures {
  sink: TestServer;
  source: TestServer;
  echo: TestServer;
}

/** Start the three destination fixtures once per file. */
export function useFixtures(): Fixtures {
  const f = {} as { sink: TestServer; source: TestServer; echo: TestServer };
  before(async () => {
    f.sink = await startSink();
    f.source = await startSource();
    // Dual-stack where possible, so 'localhost' works whether it resolves to 127.0.0.1 or ::1.
    f.echo = await startEcho({ host: '::' }).catch(() => startEcho());
  });
  after(async () => {
    await Promise.all([f.sink?.close(), f.source?.close(), f.echo?.close()]);
  });
  return f;
}

function diagnose(peers: Peer[]): string {
  return peers
    .map((p) => `--- ${p.name} (pid ${p.pid}${p.exited ? ', EXITED' : ''}) ---\n${p.output().slice(-4000)}`)
    .join('\n');
}

async function withDiagnostics<T>(peers: Peer[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const e = err as Error;
    e.message += `\n${diagnose(peers)}`;
    throw e;
  }
}

/**
 * Registers a describe() for `client → server` with `method`: upload 8 MiB, download 8 MiB,
 * full-duplex echo of 8 MiB (only where both sides relay half-close-free traffic fine), and a
 * domain-name destination.
 */
export function interopSuite(client: Side, server: Side, method: Method, fx: Fixtures): void {
  const needs = [...(client === 'libev' ? ['ss-local'] : []), ...(server === 'libev' ? ['ss-server'] : [])];
  const skip = needs.length > 0 ? peerSkip(...needs) : false;
  describe(`${client} client → ${server} server, ${method}`, { skip }, () => {
    const password = `interop-${method}-${randomBytes(6).toString('hex')}`;
    const peers: Peer[] = [];
    let socksPort = 0;

    before(async () => {
      const srv =
        server === 'libev'
          ? await startSsServer({ method, password })
          : await startLadderServer({ method, password });
      peers.push(srv);
      const cli =
        client === 'libev'
          ? await startSsLocal({ method, password, serverPort: srv.port })
          : await startLadderClient({ key: ssUrl(method, password, '127.0.0.1', srv.port) });
      peers.push(cli);
      socksPort = cli.socksPort;
    });

    after(async () => {
      await Promise.all(peers.map((p) => p.stop()));
    });

    test(`upload ${BODY_SIZE / MiB} MiB arrives byte-identical`, async () => {
      const body = randomBytes(BODY_SIZE);
      const r = await withDiagnostics(peers, () =>
        uploadVia({ proxyPort: socksPort }, { host: '127.0.0.1', port: fx.sink.port }, body),
      );
      assert.equal(
        r.reply.toString('hex'),
        r.sentSha.toString('hex'),
        'sink sha256 differs from what was sent',
      );
    });

    test(`download ${BODY_SIZE / MiB} MiB arrives byte-identical`, async () => {
      const r = await withDiagnostics(peers, () =>
        downloadVia({ proxyPort: socksPort }, { host: '127.0.0.1', port: fx.source.port }, BODY_SIZE),
      );
      assert.equal(r.bytes, BODY_SIZE + 32);
      assert.equal(
        r.gotSha.toString('hex'),
        r.sourceSha.toString('hex'),
        'received sha256 differs from what the source sent',
      );
    });

    test(`full-duplex echo of ${BODY_SIZE / MiB} MiB to the domain name 'localhost'`, async () => {
      const body = randomBytes(BODY_SIZE);
      const r = await withDiagnostics(peers, () =>
        echoVia({ proxyPort: socksPort }, { host: 'localhost', port: fx.echo.port }, body),
      );
      assert.equal(r.bytes, BODY_SIZE);
      assert.equal(r.gotSha.toString('hex'), r.sentSha.toString('hex'));
    });
  });
}
