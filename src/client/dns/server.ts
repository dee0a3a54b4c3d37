/**
 * The local DNS listener behind `--dns 127.0.0.1:5353`: UDP and TCP on one address, each query
 * handed to a DnsResolver (tunnel or filtering, see resolvers.ts). A resolver failure becomes
 * SERVFAIL; malformed queries are dropped (UDP) or end the connection (TCP). Responses larger
 * than 512 bytes over UDP are truncated to the header+question with TC set, so the stub retries
 * over TCP (RFC 1035 §4.2.1; EDNS sizes are honoured when the query carries an OPT record).
 *
 *   const srv = await startDnsServer({ host: '127.0.0.1', port: 5353, resolver });
 *   srv.udpPort, srv.tcpPort; await srv.close();
 *
 * Logs nothing about names (privacy by default); `onQuery` lets the caller count.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import {
  decodeDns,
  frameTcp,
  MAX_DNS_MESSAGE,
  servfailFor,
  TcpFrameDecoder,
} from '../../protocol/dns/message.js';
import { bindUdp, listen } from '../../shared/listen.js';
import type { DnsResolver } from './resolvers.js';

export interface DnsServerOptions {
  host: string;
  /** 0 picks a free port (UDP and TCP then may differ; both are reported). */
  port: number;
  resolver: DnsResolver;
  /** Idle timeout for TCP clients (default 30 s). */
  tcpIdleMs?: number;
  onQuery?: (info: { transport: 'udp' | 'tcp'; ok: boolean }) => void;
}

export interface DnsServerHandle {
  readonly udpPort: number;
  readonly tcpPort: number;
  close(): Promise<void>;
}

function udpLimit(query: Buffer): number {
  try {
    const q = decodeDns(query);
    const opt = q.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    return Math.max(512, Math.min(opt?.udpPayloadSize ?? 512, 4096));
  } catch {
    return 512;
  }
}

/**
 * The header and question of a long answer with TC set; SERVFAIL when the answer (from the far
 * side of the tunnel) is not DNS at all; undefined when not even that can be built (dropped).
 */
function truncated(query: Buffer, response: Buffer): Buffer | undefined {
  try {
    const r = decodeDns(response);
    return dnsPacket.encode({
      type: 'response',
      id: r.id ?? 0,
      flags: ((r.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE) & 0x7fff,
      questions: decodeDns(query).questions ?? [],
    });
  } catch {
    return servfail(query);
  }
}

/** SERVFAIL for a query that decoded, or undefined should even that fail (the query is dropped). */
function servfail(query: Buffer): Buffer | undefined {
  try {
    return servfailFor(query);
  } catch {
    return undefined;
  }
}

/** Never rejects: what comes back through the tunnel is outside input (a throw here ended the client). */
async function answer(
  resolver: DnsResolver,
  query: Buffer,
): Promise<{ response: Buffer | undefined; ok: boolean }> {
  try {
    return { response: await resolver.resolve(query), ok: true };
  } catch {
    return { response: servfail(query), ok: false };
  }
}

export async function startDnsServer(opts: DnsServerOptions): Promise<DnsServerHandle> {
  const family = net.isIPv6(opts.host) ? 'udp6' : 'udp4';
  const udp = dgram.createSocket(family);
  udp.on('message', (msg, rinfo) => {
    try {
      decodeDns(msg);
    } catch {
      return; // not DNS: drop silently
    }
    void answer(opts.resolver, msg).then(({ response, ok }) => {
      opts.onQuery?.({ transport: 'udp', ok });
      const out = response && response.length > udpLimit(msg) ? truncated(msg, response) : response;
      if (!out) return;
      try {
        udp.send(out, rinfo.port, rinfo.address, () => {});
      } catch {
        // the listener was closed while the answer was on its way
      }
    });
  });
  udp.on('error', () => {});
  const udpPort = (await bindUdp(udp, opts.port, opts.host)).port;

  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((sock) => {
    sockets.add(sock);
    sock.setTimeout(opts.tcpIdleMs ?? 30_000, () => sock.destroy());
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    const dec = new TcpFrameDecoder();
    sock.on('data', (chunk: Buffer) => {
      for (const msg of dec.push(chunk)) {
        try {
          decodeDns(msg);
        } catch {
          sock.destroy();
          return;
        }
        void answer(opts.resolver, msg).then(({ response, ok }) => {
          opts.onQuery?.({ transport: 'tcp', ok });
          // An answer too long to frame (from the far side) is not relayed; the stub times out.
          if (!sock.destroyed && response && response.length <= MAX_DNS_MESSAGE)
            sock.write(frameTcp(response));
        });
      }
      if (dec.buffered > 2 + 65535) sock.destroy();
    });
  });
  // Prefer the same port number as UDP when the caller asked for a fixed one.
  const tcpPort = (await listen(tcp, { port: opts.port === 0 ? 0 : opts.port, host: opts.host })).port;

  return {
    udpPort,
    tcpPort,
    async close() {
      for (const s of sockets) s.destroy();
      udp.close();
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}
