/**
 * A ShadowTLS port whose handshake site cannot be reached resets every connection (as the site
 * would be unreachable directly); the operator is told, at most once a minute, with the site
 * (configuration) and the error, never a client's address. A reachable site: no such line.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { listenShadowTls, type ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { createLogger } from '../../src/shared/logger.js';
import { freePort, serve, type TestServer } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';

const listeners: ShadowTlsListener[] = [];
const sites: TestServer[] = [];
after(async () => {
  await Promise.all([...listeners.map((l) => l.close()), ...sites.map((s) => s.close())]);
});

async function portWithLog(sitePort: number): Promise<{ port: number; text: () => string }> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const l = await listenShadowTls({
    port: 0,
    host: '127.0.0.1',
    handshake: { host: '127.0.0.1', port: sitePort },
    passwords: ['site-warning-pw'],
    idleMs: 10_000,
    logger: createLogger({ level: 'info', destination: out }),
    onStream: (s) => s.destroy(),
  });
  listeners.push(l);
  return { port: l.address.port, text: () => text };
}

/** Connect, send a byte, and wait for the port to close the connection. */
async function knock(port: number): Promise<void> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  s.write('x');
  await new Promise((r) => s.once('close', r));
}

describe('ShadowTLS port: an unreachable handshake site', () => {
  it('is one warning a minute naming the site, not the client', async () => {
    const dead = await freePort(); // nothing listens there
    const p = await portWithLog(dead);
    await knock(p.port);
    await knock(p.port);
    await waitFor(() => p.text().includes('handshake site cannot be reached'), { timeoutMs: 5000 });
    const lines = p
      .text()
      .trim()
      .split('\n')
      .filter((l) => l.includes('handshake site cannot be reached'));
    assert.equal(lines.length, 1, p.text());
    const line = JSON.parse(lines[0]!) as { level: number; site: string; err: string };
    assert.equal(line.level, 40);
    assert.equal(line.site, `127.0.0.1:${dead}`);
    assert.equal(line.err, 'ECONNREFUSED');
  });

  it('a reachable site: no such line (the negative control)', async () => {
    const site = await serve((s) => s.end());
    sites.push(site);
    const p = await portWithLog(site.port);
    await knock(p.port);
    await knock(p.port);
    assert.equal(p.text().includes('cannot be reached'), false, p.text());
  });
});
