/**
 * The server a client test tunnels through, and a bulk destination: ss-server (shadowsocks-libev, aes-256-gcm) or an
 * in-process Ladder server (chacha20-ietf-poly1305) on relay.ts, so that relayLive() on the
 * test's thread counts the client's native relays only. Both on 127.0.0.1, private
 * destinations allowed.
 */
import { randomBytes } from 'node:crypto';
import { ShadowsocksServer } from '../../src/server/server.js';
import { sha256, sha256Hex } from './hash.js';
import { serve, type ServeOptions, type TestServer } from './net.js';
import { ssUrl, startSsServer, type Peer } from './peers.js';

export type UpstreamKind = 'ss-server' | 'ladder';

export interface Upstream {
  /** The ss:// key for it. */
  url: string;
  close(): Promise<void>;
}

export async function startUpstream(kind: UpstreamKind, password: string): Promise<Upstream> {
  if (kind === 'ss-server') {
    const method = 'aes-256-gcm';
    const p: Peer & { port: number } = await startSsServer({ method, password });
    return { url: ssUrl(method, password, '127.0.0.1', p.port), close: () => p.stop() };
  }
  const method = 'chacha20-ietf-poly1305';
  const server = new ShadowsocksServer({
    keys: [{ id: 'k', method, secret: password }],
    allowPrivateDestinations: true,
    nativeRelay: false, // relayLive() counts the client's relays only
  });
  const addr = await server.listen({ port: 0, host: '127.0.0.1' });
  return { url: ssUrl(method, password, '127.0.0.1', addr.port), close: () => server.close() };
}

/**
 * A destination that sends `bytes` random bytes at once and, once it has read as many, their
 * sha256 (no half-close needed: ss-server closes both directions at the first FIN); `sent` gets
 * the sha256 (hex) of every block it sent.
 */
export function serveBulk(bytes: number, sent: Set<string>, opts: ServeOptions = {}): Promise<TestServer> {
  return serve(
    (s) => {
      const out = randomBytes(bytes);
      sent.add(sha256Hex(out));
      s.write(out);
      const got: Buffer[] = [];
      let n = 0;
      s.on('data', (b: Buffer) => {
        got.push(b);
        n += b.length;
        if (n === bytes) s.write(sha256(...got));
      });
      s.once('end', () => s.end());
    },
    { allowHalfOpen: true, ...opts },
  );
}
