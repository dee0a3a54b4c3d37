import assert from 'node:assert/strict';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../../src/transport/udp-socks5.js';

/**
 * 100 datagrams of 512 bytes through the SOCKS5 UDP ASSOCIATE of the proxy at `socksPort` to a
 * fresh local UDP echo: none corrupted, at least 97 back (loopback loses almost none).
 */
export async function assertUdpEchoes100(socksPort: number): Promise<void> {
  const echo = await startUdpEcho();
  const assoc = await socks5UdpAssociate(socksPort);
  try {
    const r = await udpEchoRun(assoc, { type: 'ipv4', host: '127.0.0.1', port: echo.port }, 100, 512);
    assert.equal(r.corrupted, 0);
    assert.ok(r.received >= 97, `${r.received}/100 delivered`);
  } finally {
    assoc.close();
    await echo.close();
  }
}
