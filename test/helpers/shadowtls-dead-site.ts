/** A ShadowTLS port whose handshake site cannot be reached (nothing listens there): it resets every dial. */
import { listenShadowTls, type ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { silentLogger } from '../../src/shared/logger.js';
import { freePort } from './net.js';

export async function shadowTlsPortWithDeadSite(password: string): Promise<ShadowTlsListener> {
  const dead = await freePort();
  return listenShadowTls({
    port: 0,
    host: '127.0.0.1',
    handshake: { host: '127.0.0.1', port: dead },
    passwords: [password],
    idleMs: 10_000,
    logger: silentLogger,
    onStream: (s) => s.destroy(),
  });
}
