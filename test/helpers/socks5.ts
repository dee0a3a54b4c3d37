/**
 * A minimal SOCKS5 CONNECT client (RFC 1928, no authentication), written on raw bytes so the
 * tests depend on nothing but the proxy under test. Domains are sent unresolved (ATYP 3).
 */
import net from 'node:net';

export class Socks5Error extends Error {
  constructor(
    message: string,
    readonly reply?: number,
  ) {
    super(message);
    this.name = 'Socks5Error';
  }
}

function encodeTarget(host: string, port: number): Buffer {
  let addr: Buffer;
  if (net.isIPv4(host)) {
    addr = Buffer.from([1, ...host.split('.').map(Number)]);
  } else if (net.isIPv6(host)) {
    addr = Buffer.concat([Buffer.from([4]), expandIpv6(host)]);
  } else {
    const name = Buffer.from(host, 'utf8');
    if (name.length === 0 || name.length > 255) throw new Socks5Error('domain must be 1..255 bytes');
    addr = Buffer.concat([Buffer.from([3, name.length]), name]);
  }
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([addr, p]);
}

function expandIpv6(text: string): Buffer {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return out;
}

export interface Socks5ConnectOptions {
  proxyHost?: string;
  proxyPort: number;
  host: string;
  port: number;
  timeoutMs?: number;
  /** Sent in the same write as the CONNECT request (optimistic data), if given. */
  earlyData?: Buffer;
}

/**
 * Open a tunnelled connection. Resolves with the socket (paused, with any bytes that followed
 * the reply unshifted) once the proxy answered success; rejects with Socks5Error otherwise.
 */
export function socks5Connect(opts: Socks5ConnectOptions): Promise<net.Socket> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: opts.proxyHost ?? '127.0.0.1', port: opts.proxyPort });
    s.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let stage: 'greet' | 'reply' = 'greet';
    const timer = setTimeout(() => fail(new Socks5Error(`SOCKS5 handshake timed out (${stage})`)), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('error', onError);
      s.off('close', onClose);
    };
    const fail = (e: Error): void => {
      cleanup();
      s.destroy();
      reject(e);
    };
    const onError = (e: Error): void => fail(e);
    const onClose = (): void => fail(new Socks5Error(`proxy closed during ${stage}`));
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (stage === 'greet') {
        if (buf.length < 2) return;
        if (buf[0] !== 5 || buf[1] !== 0)
          return fail(new Socks5Error(`bad method selection ${buf.subarray(0, 2).toString('hex')}`));
        buf = buf.subarray(2);
        stage = 'reply';
        const req = Buffer.concat([Buffer.from([5, 1, 0]), encodeTarget(opts.host, opts.port)]);
        s.write(opts.earlyData ? Buffer.concat([req, opts.earlyData]) : req);
      }
      if (stage === 'reply') {
        if (buf.length < 5) return;
        if (buf[0] !== 5) return fail(new Socks5Error(`bad reply version ${buf[0]}`));
        if (buf[1] !== 0) return fail(new Socks5Error(`CONNECT refused with reply ${buf[1]}`, buf[1]));
        const atyp = buf[3];
        const len = atyp === 1 ? 10 : atyp === 4 ? 22 : atyp === 3 ? 7 + buf[4]! : -1;
        if (len < 0) return fail(new Socks5Error(`bad reply ATYP ${atyp}`));
        if (buf.length < len) return;
        cleanup();
        s.pause();
        if (buf.length > len) s.unshift(buf.subarray(len));
        resolve(s);
      }
    };
    s.on('data', onData);
    s.once('error', onError);
    s.once('close', onClose);
    s.write(Buffer.from([5, 1, 0]));
  });
}

/** Through the SOCKS5 proxy on `proxyPort` to `host`:`port` (an echo): send `text`, return the first answer. */
export async function socks5FirstAnswer(
  proxyPort: number,
  port: number,
  text: string,
  host = '127.0.0.1',
): Promise<string> {
  const s = await socks5Connect({ proxyPort, host, port });
  s.on('error', () => {});
  try {
    const back = new Promise<string>((r) => s.once('data', (b: Buffer) => r(b.toString())));
    s.resume();
    s.write(text);
    return await back;
  } finally {
    s.destroy();
  }
}
