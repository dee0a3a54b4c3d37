/** A Shadowsocks stream through a test's own NextHop (a gRPC pool, say) to an echo: what came back. */
import type { NextHop } from '../../src/transport/dialer.js';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import { Shadowsocks2022Dialer } from '../../src/transport/shadowsocks2022-dialer.js';

/** Echo `payload` through a Shadowsocks stream over `hop`; resolves with what came back. */
export function echoThrough(
  hop: NextHop,
  key: { method: string; secret: string },
  echoPort: number,
  payload: Buffer,
): Promise<Buffer> {
  const ep = { host: '127.0.0.1', port: 1, method: key.method, password: key.secret, nextHop: hop };
  const dialer = key.method.startsWith('2022-') ? new Shadowsocks2022Dialer(ep) : new ShadowsocksDialer(ep);
  const s = new DialerStream(dialer, { type: 'ipv4', host: '127.0.0.1', port: echoPort });
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let n = 0;
    s.on('data', (b: Buffer) => {
      got.push(b);
      n += b.length;
      if (n >= payload.length) s.end();
    });
    s.once('end', () => resolve(Buffer.concat(got)));
    s.once('error', reject);
    s.write(payload);
  });
}
