/** The short connection both benches time: SOCKS5 handshake (or none), 32-byte request, echo, close. */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type { TestServer } from '../test/helpers/net.js';
import { connect, readExactly } from '../test/helpers/net.js';
import { socks5Connect } from '../test/helpers/socks5.js';

/** The request each short connection sends (and the echo must return). */
export const REQ = randomBytes(32);

/**
 * ms for one exchange with the echo server, through SOCKS5 port `socks` or directly; `host` is the
 * destination the SOCKS5 request names (an IP literal by default; a name such as "localhost"
 * takes the server's name-resolution path, as a browser's socks5h request does).
 */
export async function oneExchange(
  socks: number | undefined,
  echo: TestServer,
  host = '127.0.0.1',
): Promise<number> {
  const t0 = performance.now();
  const s: net.Socket =
    socks === undefined
      ? await connect(echo.port)
      : await socks5Connect({ proxyPort: socks, host, port: echo.port, timeoutMs: 10_000 });
  try {
    s.setNoDelay(true);
    const p = readExactly(s, REQ.length, 10_000);
    s.write(REQ);
    if (!(await p).equals(REQ)) throw new Error('echo mismatch');
    return performance.now() - t0;
  } finally {
    s.destroy();
  }
}
