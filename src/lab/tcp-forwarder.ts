/**
 * The censor path for TCP: one listener per emulated remote host (a distinct 127.x address, so
 * 3-tuples are real), forwarding to the real backend and applying the censor's verdicts with
 * the actions a user-space forwarder has (docs/glossary.md, Terms): PASS, DROP_C2S, DROP_S2C,
 * RST_BOTH (socket.resetAndDestroy() on both legs), BLACKHOLE_NEW, REFUSE_NEW.
 *
 * Client bytes are read eagerly (no back-pressure on the client leg), so chunk boundaries follow
 * the client's writes as closely as loopback allows.
 */
import net from 'node:net';
import type { Censor, Endpoint, TcpFlow } from './censor.js';

export interface TcpHostSpec {
  /** The emulated remote address, e.g. 127.0.10.1. */
  readonly ip: string;
  /** Listening port; 0 (default) picks a free one. */
  readonly port?: number;
  /** The port the censor sees (e.g. 443) when the listener had to use another one. */
  readonly logicalPort?: number;
  readonly backend: Endpoint;
  readonly label?: string;
}

/** Longest a blackholed connection is kept open (real ms), so nothing leaks if the client forgets it. */
const BLACKHOLE_MAX_REAL_MS = 120_000;

export function normalizeIp(a: string | undefined): string {
  if (!a) return '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export class TcpForwarder {
  readonly spec: TcpHostSpec;
  readonly #censor: Censor;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #port = 0;

  private constructor(censor: Censor, spec: TcpHostSpec) {
    this.#censor = censor;
    this.spec = spec;
    this.#server = net.createServer({ allowHalfOpen: true }, (s) => this.#onConnection(s));
  }

  static async listen(censor: Censor, spec: TcpHostSpec): Promise<TcpForwarder> {
    const f = new TcpForwarder(censor, spec);
    await new Promise<void>((resolve, reject) => {
      f.#server.once('error', reject);
      f.#server.listen({ host: spec.ip, port: spec.port ?? 0 }, () => {
        f.#server.off('error', reject);
        resolve();
      });
    });
    f.#port = (f.#server.address() as net.AddressInfo).port;
    return f;
  }

  /** Where clients connect. */
  get address(): Endpoint {
    return { host: this.spec.ip, port: this.#port };
  }

  /** The 3-tuple server side the censor sees. */
  get logical(): Endpoint {
    return { host: this.spec.ip, port: this.spec.logicalPort ?? this.#port };
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #track(s: net.Socket): void {
    this.#sockets.add(s);
    s.once('close', () => this.#sockets.delete(s));
  }

  #onConnection(client: net.Socket): void {
    this.#track(client);
    client.on('error', () => undefined);
    const censor = this.#censor;
    const flow = censor.newTcpFlow(
      {
        cIP: normalizeIp(client.remoteAddress),
        cPort: client.remotePort ?? 0,
        sIP: this.spec.ip,
        sPort: this.logical.port,
      },
      this.spec.backend,
    );
    const verdict = censor.onTcpAccept(flow);
    switch (verdict.action) {
      case 'REFUSE_NEW':
        client.resetAndDestroy();
        return;
      case 'RST_BOTH':
        client.pause();
        censor.clock.setTimeout(() => client.resetAndDestroy(), verdict.delayMs);
        return;
      case 'BLACKHOLE_NEW': {
        // Accept (the kernel already did) and never answer anything, not even a FIN.
        client.on('data', () => undefined);
        const t = setTimeout(() => client.destroy(), BLACKHOLE_MAX_REAL_MS);
        t.unref();
        client.once('close', () => clearTimeout(t));
        return;
      }
      case 'PASS':
      case 'DROP_S2C':
        this.#relay(client, flow);
    }
  }

  #relay(client: net.Socket, flow: TcpFlow): void {
    const censor = this.#censor;
    const backend = net.connect({ host: flow.backend.host, port: flow.backend.port, allowHalfOpen: true });
    this.#track(backend);
    let closed = false;
    const resetBoth = (): void => {
      if (closed) return;
      closed = true;
      client.resetAndDestroy();
      if (backend.connecting) backend.destroy();
      else backend.resetAndDestroy();
    };
    backend.on('error', (err: NodeJS.ErrnoException) => {
      if (closed) return;
      closed = true;
      // Mirror the server's RST (or refusal) to the client; anything else closes quietly.
      if (err.code === 'ECONNRESET' || err.code === 'ECONNREFUSED') client.resetAndDestroy();
      else client.destroy();
    });
    client.on('error', () => {
      if (closed) return;
      closed = true;
      if (backend.connecting) backend.destroy();
      else backend.resetAndDestroy();
    });

    client.on('data', (chunk: Buffer) => {
      if (closed || flow.held || flow.dropC2S) return;
      const v = censor.onClientData(flow, chunk);
      if (v.action === 'PASS') {
        backend.write(chunk);
      } else if (v.action === 'DROP_C2S') {
        if (v.forwardThis) backend.write(chunk);
      } else if (v.action === 'INJECT_RESPONSE') {
        // The request never reaches the site; the client reads the forged page, then FIN.
        closed = true;
        client.end(v.response);
        backend.destroy();
      } else if (v.action === 'RST_CLIENT') {
        closed = true;
        client.resetAndDestroy();
        // The server never sees an RST from this censor; close our leg quietly.
        backend.destroy();
      } else {
        backend.write(chunk);
        censor.clock.setTimeout(resetBoth, v.delayMs);
      }
    });
    client.on('end', () => {
      if (closed || flow.held || flow.dropC2S) return;
      backend.end();
    });
    backend.on('data', (chunk: Buffer) => {
      if (closed || flow.held || flow.dropS2C) return;
      if (censor.isEndpointBlocked(flow.ref.sIP, flow.ref.sPort)) {
        // Null-routed while the connection was open.
        flow.dropS2C = true;
        return;
      }
      censor.onServerData(flow, chunk);
      if (!client.write(chunk)) {
        backend.pause();
        client.once('drain', () => backend.resume());
      }
    });
    backend.on('end', () => {
      if (closed || flow.held || flow.dropS2C) return;
      client.end();
    });
    backend.on('close', () => {
      if (!closed && !flow.held && !flow.dropS2C && !client.destroyed && client.writableEnded)
        client.destroySoon();
    });
    client.on('close', () => {
      if (!closed) {
        closed = true;
        backend.destroy();
      }
    });
  }
}
