/**
 * A ShadowTLS v3 client for the server's tests, before (and apart from) the product dialer: it
 * sends a real ClientHello (OpenSSL's, captured from Node's tls.connect) re-signed with the codec,
 * checks that the handshake server's application-data records come back tagged, and switches
 * after the first one, without finishing the TLS handshake itself (the ShadowTLS server never
 * looks inside the TLS records: whether the client's TLS finished is the handshake server's
 * business, which is closed at the switch). Not a product client.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { promisify } from 'node:util';
import {
  DataOpener,
  HandshakeUntagger,
  RecordReader,
  TYPE_APPLICATION_DATA,
  connectionHmac,
  serverRandomOf,
  signClientHello,
} from '../../src/protocol/shadowtls/index.js';
import { ShadowTlsStream } from '../../src/transport/shadowtls-stream.js';

/** A lab HTTPS site (the handshake server) on 127.0.0.1 serving `page`, TLS 1.3 only or TLS 1.2 only. */
export async function startLabSite(
  certs: { cert: Buffer; key: Buffer },
  version: 'TLSv1.3' | 'TLSv1.2',
  page: string,
): Promise<https.Server> {
  const s = https.createServer(
    { cert: certs.cert, key: certs.key, minVersion: version, maxVersion: version },
    (_q, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(page);
    },
  );
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

/** The first record of a Node (OpenSSL) TLS client's connection to `servername`: its ClientHello. */
export async function captureClientHello(servername: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((s) => {
      const r = new RecordReader();
      s.on('data', (c: Buffer) => {
        r.push(c);
        const rec = r.next();
        if (rec) {
          resolve(Buffer.from(rec));
          s.destroy();
          srv.close();
        }
      });
      s.on('error', () => {});
    });
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }).on('error', () => {});
    });
    srv.on('error', reject);
  });
}

export interface ShadowTlsTestConnection {
  readonly stream: ShadowTlsStream;
  readonly socket: net.Socket;
  /** Handshake-server application-data records that carried a correct tag before the switch. */
  readonly tagged: number;
}

/**
 * Connect to a ShadowTLS port with `hello` (a ClientHello record) signed by `password`. Rejects
 * with 'untagged' when the handshake server's application data comes back without the tag (a
 * wrong password, a relay), 'closed' when the connection ends first, or 'timeout'.
 */
export function connectShadowTls(
  port: number,
  password: string,
  hello: Buffer,
  timeoutMs = 5000,
  /** The session id's 28 random bytes (the same twice: a replayed hello); default fresh ones. */
  random28?: Uint8Array,
  /** The loopback address to connect from (another client's address: 127.0.0.2…). */
  localAddress?: string,
): Promise<ShadowTlsTestConnection> {
  const record = Buffer.from(hello);
  signClientHello(record.subarray(5), password, random28);
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: '127.0.0.1',
      port,
      allowHalfOpen: true,
      ...(localAddress !== undefined ? { localAddress } : {}),
    });
    const reader = new RecordReader();
    let untagger: HandshakeUntagger | undefined;
    let serverRandom: Buffer | undefined;
    const timer = setTimeout(() => fail('timeout'), timeoutMs);
    const fail = (why: string): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(why));
    };
    const onData = (c: Buffer): void => {
      reader.push(c);
      for (let rec = reader.next(); rec; rec = reader.next()) {
        if (!serverRandom) {
          serverRandom = serverRandomOf(rec);
          if (!serverRandom) return fail('no ServerHello');
          untagger = new HandshakeUntagger(password, serverRandom);
          continue;
        }
        if (rec[0] !== TYPE_APPLICATION_DATA) continue;
        if (!untagger!.untag(rec)) return fail('untagged');
        // Switch: the first write of the stream is the record tagged with HMAC_SR_C.
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('close', onClose);
        const stream = new ShadowTlsStream(socket, {
          held: reader.pending > 0 ? reader.drain() : undefined,
          opener: new DataOpener(connectionHmac(password, serverRandom, 'S'), untagger!.chain()),
          seal: connectionHmac(password, serverRandom, 'C'),
        });
        resolve({ stream, socket, tagged: 1 });
        return;
      }
    };
    const onClose = (): void => fail('closed');
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', () => {});
    socket.write(record);
  });
}

/** The body curl gets from https://`name`:`port`/ on 127.0.0.1, trusting the lab CA in `caFile`. */
export async function curlSite(name: string, port: number, caFile: string): Promise<string> {
  const { stdout } = await promisify(execFile)(
    'curl',
    [
      '-sS',
      '--max-time',
      '10',
      '--cacert',
      caFile,
      '--resolve',
      `${name}:${port}:127.0.0.1`,
      `https://${name}:${port}/`,
    ],
    { maxBuffer: 1 << 20 },
  );
  return stdout;
}
