/**
 * The probe's DNS step: the system resolver (getaddrinfo, as a browser would), a plain UDP query
 * to a given resolver (the first reply wins, as for a stub resolver: an on-path injector's forged
 * answer is what the user gets), and DNS over TCP on any stream (the control, asked through the
 * tunnel so the user's server is the one resolving).
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import dnsPacket from 'dns-packet';
import { failureOf, withTimeout, type Failure } from './failure.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface DnsAnswer {
  readonly answer_type: 'A' | 'AAAA';
  readonly ipv4?: string;
  readonly ipv6?: string;
  readonly ttl: number | null;
}

/** One query in OONI's shape (df-002-dnst). */
export interface DnsQuery {
  readonly engine: 'system' | 'udp' | 'tcp';
  readonly resolver_address: string;
  readonly query_type: 'A' | 'ANY';
  readonly hostname: string;
  readonly answers: DnsAnswer[];
  readonly failure: Failure;
  readonly t: number;
}

export const addrsOf = (q: DnsQuery): string[] =>
  q.answers.map((a) => a.ipv4 ?? a.ipv6 ?? '').filter(Boolean);

function fromIps(ips: readonly string[], ttl: number | null): DnsAnswer[] {
  return ips.map((ip) =>
    isIP(ip) === 6 ? { answer_type: 'AAAA', ipv6: ip, ttl } : { answer_type: 'A', ipv4: ip, ttl },
  );
}

function answersOf(reply: Buffer): { answers: DnsAnswer[]; failure: Failure } {
  const p = dnsPacket.decode(reply);
  const rcode = (p.flags ?? 0) & 0xf;
  const answers: DnsAnswer[] = [];
  for (const a of p.answers ?? []) {
    if (a.type === 'A') answers.push({ answer_type: 'A', ipv4: a.data, ttl: a.ttl ?? null });
    if (a.type === 'AAAA') answers.push({ answer_type: 'AAAA', ipv6: a.data, ttl: a.ttl ?? null });
  }
  if (rcode === 3) return { answers, failure: 'dns_nxdomain_error' };
  if (rcode !== 0) return { answers, failure: 'dns_server_failure' };
  return { answers, failure: answers.length ? null : 'dns_no_answer' };
}

function query(hostname: string): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: Math.floor(Math.random() * 65536),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name: hostname, class: 'IN' }],
  });
}

export async function resolveSystem(hostname: string, timeoutMs: number, t0: number): Promise<DnsQuery> {
  const base = { engine: 'system', resolver_address: '', query_type: 'ANY', hostname } as const;
  if (isIP(hostname)) return { ...base, answers: fromIps([hostname], null), failure: null, t: 0 };
  try {
    const r = await withTimeout(lookup(hostname, { all: true }), timeoutMs);
    return {
      ...base,
      answers: fromIps(
        r.map((x) => x.address),
        null,
      ),
      failure: null,
      t: since(t0),
    };
  } catch (err) {
    return { ...base, answers: [], failure: failureOf(err), t: since(t0) };
  }
}

/**
 * One A query for `hostname` to `server` over `exchange` (which sends the message and resolves
 * with the reply), under the deadline; `done` releases the socket or stream either way.
 */
async function askResolver(
  engine: 'udp' | 'tcp',
  hostname: string,
  server: HostPort,
  timeoutMs: number,
  t0: number,
  exchange: (msg: Buffer) => Promise<Buffer>,
  done: () => void,
): Promise<DnsQuery> {
  const base = {
    engine,
    resolver_address: `${server.host}:${server.port}`,
    query_type: 'A',
    hostname,
  } as const;
  try {
    if (isIP(hostname)) return { ...base, answers: fromIps([hostname], null), failure: null, t: 0 };
    const reply = await withTimeout(exchange(query(hostname)), timeoutMs);
    return { ...base, ...answersOf(reply), t: since(t0) };
  } catch (err) {
    return { ...base, answers: [], failure: failureOf(err), t: since(t0) };
  } finally {
    done();
  }
}

/** A plain UDP A query to `server`; the first reply with our id is the answer. */
export function resolveUdp(
  hostname: string,
  server: HostPort,
  timeoutMs: number,
  t0: number,
): Promise<DnsQuery> {
  const sock = dgram.createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
  const exchange = (msg: Buffer): Promise<Buffer> =>
    new Promise<Buffer>((resolve, reject) => {
      sock.on('error', reject);
      sock.on('message', (m) => {
        if (m.length >= 2 && m.readUInt16BE(0) === msg.readUInt16BE(0)) resolve(m);
      });
      sock.send(msg, server.port, server.host);
    });
  return askResolver('udp', hostname, server, timeoutMs, t0, exchange, () => sock.close());
}

/** DNS over TCP (2-byte length framing) on an already opened stream, e.g. through the tunnel. */
export function resolveTcpOver(
  stream: Duplex,
  hostname: string,
  server: HostPort,
  timeoutMs: number,
  t0: number,
): Promise<DnsQuery> {
  const exchange = (msg: Buffer): Promise<Buffer> =>
    new Promise<Buffer>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      stream.on('error', reject);
      stream.on('end', () => reject(Object.assign(new Error('connection closed'), { code: 'EOF' })));
      stream.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
          resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        else if (buf.length > 65_537) reject(new Error('oversized DNS reply'));
      });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      stream.write(Buffer.concat([len, msg]));
    });
  return askResolver('tcp', hostname, server, timeoutMs, t0, exchange, () => stream.destroy());
}

export const since = (t0: number): number => Math.round(performance.now() - t0) / 1000;
