/**
 * A TCP forwarder on loopback that delays every byte by `delayMs` each way, with at most
 * `inFlight` bytes per direction on their way (reading pauses past it, as a TCP window of that
 * size would stop a sender): a link with a round-trip time of 2 x delayMs and a bandwidth-delay
 * product bounded like the kernel's autotuned windows, for protocols whose own windows bound
 * what they send per round trip (HTTP/2 flow control of gRPC calls). Not a network emulator: no
 * loss, no bandwidth limit, no jitter.
 */
import net from 'node:net';

export interface DelayProxy {
  port: number;
  close(): Promise<void>;
}

export async function startDelayProxy(
  targetPort: number,
  delayMs: number,
  inFlight = 4 * 1024 * 1024,
): Promise<DelayProxy> {
  const sockets = new Set<net.Socket>();
  const pipe = (a: net.Socket, b: net.Socket): void => {
    let flying = 0;
    a.on('data', (d: Buffer) => {
      flying += d.length;
      if (flying > inFlight) a.pause();
      setTimeout(() => {
        flying -= d.length;
        if (!b.destroyed) b.write(d);
        if (flying <= inFlight && a.isPaused()) a.resume();
      }, delayMs);
    });
    a.on('end', () => setTimeout(() => b.end(), delayMs));
  };
  const server = net.createServer((c) => {
    const u = net.connect(targetPort, '127.0.0.1');
    for (const s of [c, u]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => {
        c.destroy();
        u.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    pipe(c, u);
    pipe(u, c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
