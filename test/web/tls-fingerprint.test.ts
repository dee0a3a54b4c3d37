/**
 * The TLS web front picks what nginx picks for the same ClientHello: nginx's cipher policy
 * (`HIGH:!aNULL:!MD5`, the client's order decides) against Debian's nginx with the same
 * certificate and TLS 1.2 + 1.3 (as Debian's nginx.conf and certbot configure it), also after a
 * certificate swap (setSecureContext resets the order unless told). Negative control: a Node
 * https server with its defaults picks by its own order, unlike nginx.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { dirDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { nginxSkip, opensslSkip } from './fixtures.js';
import { H2_HOST, nginxH2Site, type H2Site } from './h2-fixtures.js';

/** Client offers: [what, TLS options]; the server's pick is compared. */
const OFFERS: Array<[string, tls.ConnectionOptions]> = [
  [
    'TLS 1.3, ChaCha first',
    { ciphers: 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384' },
  ],
  ['TLS 1.3, AES-128 first', { ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384' }],
  [
    'TLS 1.2, ChaCha first',
    {
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384',
    },
  ],
  [
    'TLS 1.2, AES-256 first',
    { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256' },
  ],
  [
    'TLS 1.2, CBC only',
    { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA' },
  ],
];

/** The version and cipher the server at `port` settles on for `offer` ('refused' if none). */
async function pick(port: number, ca: string, offer: tls.ConnectionOptions): Promise<string> {
  const s = tls.connect({ port, host: '127.0.0.1', servername: H2_HOST, ca, ...offer });
  try {
    await new Promise((resolve, reject) => {
      s.once('secureConnect', resolve);
      s.once('error', reject);
    });
    return `${s.getProtocol() ?? '?'} ${s.getCipher().standardName}`;
  } catch {
    return 'refused';
  } finally {
    s.destroy();
  }
}

async function picks(port: number, ca: string): Promise<string[]> {
  const out: string[] = [];
  for (const [what, offer] of OFFERS) out.push(`${what}: ${await pick(port, ca, offer)}`);
  return out;
}

describe('TLS cipher choice matches nginx', { skip: nginxSkip() || opensslSkip() }, () => {
  let site: H2Site;
  let front: WebFront;
  before(async () => {
    site = await nginxH2Site('tls-fp', 'ssl_protocols TLSv1.2 TLSv1.3;');
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/tls-fp-secret',
      tls: { cert: site.cert, key: site.key },
      decoy: dirDecoy(site.root),
      onUpgrade: () => false,
    });
  });
  after(async () => {
    await front?.close();
    await site?.stop();
  });

  test('the same version and cipher as nginx for every offer, before and after a certificate swap', async () => {
    const theirs = await picks(site.nginx.port, site.cert);
    assert.ok(
      theirs.every((p) => !p.endsWith('refused')),
      theirs.join('\n'),
    );
    assert.deepEqual(await picks(front.port, site.cert), theirs);
    front.setTlsCredentials({ cert: site.cert, key: site.key });
    assert.deepEqual(await picks(front.port, site.cert), theirs, 'after setTlsCredentials');
  });

  test("negative control: Node's default server order picks otherwise", async () => {
    const plain = https.createServer({ cert: site.cert, key: site.key });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const port = (plain.address() as AddressInfo).port;
      assert.notDeepEqual(await picks(port, site.cert), await picks(site.nginx.port, site.cert));
    } finally {
      await new Promise((r) => plain.close(r));
    }
  });
});
