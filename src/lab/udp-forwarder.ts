/**
 * The censor path for UDP: one socket per emulated remote host, one upstream socket per client
 * 4-tuple (60 s idle expiry, the QUIC paper's flow model), with C2 DNS injection (forged replies
 * at once, the genuine answer after genuineDelayMs or never) and C1 null-routing. C5 (QUIC
 * Initial SNI) plugs in at `onUdpClientDatagram` (a seam; not emulated yet).
 */
import dgram from 'node:dgram';
import type { Censor, Endpoint } from './censor.js';

export interface UdpHostSpec {
  readonly ip: string;
  readonly port?: number;
  readonly logicalPort?: number;
  readonly backend: Endpoint;
}

const FLOW_IDLE_MS = 60_000;

interface UdpFlow {
  readonly upstream: dgram.Socket;
  timer: ReturnType<Censor['clock']['setTimeout']>;
  /** Delay to apply to genuine replies until this censor time (after an injection). */
  genuineDelay: number | 'drop';
}

export class UdpForwarder {
  readonly spec: UdpHostSpec;
  readonly #censor: Censor;
  readonly #socket: dgram.Socket;
  readonly #flows = new Map<string, UdpFlow>();
  #port = 0;

  private constructor(censor: Censor, spec: UdpHostSpec) {
    this.#censor = censor;
    this.spec = spec;
    this.#socket = dgram.createSocket('udp4');
    this.#socket.on('message', (msg, rinfo) => this.#onClient(msg, rinfo));
    this.#socket.on('error', () => undefined);
  }

  static async listen(censor: Censor, spec: UdpHostSpec): Promise<UdpForwarder> {
    const f = new UdpForwarder(censor, spec);
    await new Promise<void>((resolve, reject) => {
      f.#socket.once('error', reject);
      f.#socket.bind({ address: spec.ip, port: spec.port ?? 0 }, () => {
        f.#socket.off('error', reject);
        resolve();
      });
    });
    f.#port = f.#socket.address().port;
    return f;
  }

  get address(): Endpoint {
    return { host: this.spec.ip, port: this.#port };
  }

  get logical(): Endpoint {
    return { host: this.spec.ip, port: this.spec.logicalPort ?? this.#port };
  }

  async close(): Promise<void> {
    for (const f of this.#flows.values()) {
      this.#censor.clock.clearTimeout(f.timer);
      f.upstream.close();
    }
    this.#flows.clear();
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }

  #onClient(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const censor = this.#censor;
    const key = `${rinfo.address}:${rinfo.port}`;
    const ref = { cIP: rinfo.address, cPort: rinfo.port, sIP: this.spec.ip, sPort: this.logical.port };
    let flow = this.#flows.get(key);
    const v = censor.onUdpClientDatagram(ref, msg);
    for (const f of v.forged) this.#send(f, rinfo.port, rinfo.address);
    if (!flow) {
      const upstream = dgram.createSocket('udp4');
      upstream.on('error', () => undefined);
      const created: UdpFlow = {
        upstream,
        timer: censor.clock.setTimeout(() => this.#expire(key), FLOW_IDLE_MS),
        genuineDelay: 0,
      };
      flow = created;
      upstream.on('message', (reply) => this.#onUpstream(created, reply, rinfo));
      upstream.connect(this.spec.backend.port, this.spec.backend.host);
      this.#flows.set(key, created);
    } else {
      censor.clock.clearTimeout(flow.timer);
      flow.timer = censor.clock.setTimeout(() => this.#expire(key), FLOW_IDLE_MS);
    }
    flow.genuineDelay = v.forged.length > 0 ? v.genuine : 0;
    if (v.drop) return;
    const send = (f: UdpFlow): void => {
      try {
        f.upstream.send(msg);
      } catch {
        // not connected yet: retry once connected
        f.upstream.once('connect', () => f.upstream.send(msg));
      }
    };
    send(flow);
  }

  #onUpstream(flow: UdpFlow, reply: Buffer, client: dgram.RemoteInfo): void {
    const censor = this.#censor;
    if (censor.isEndpointBlocked(this.spec.ip, this.logical.port)) return;
    const d = flow.genuineDelay;
    if (d === 'drop') return;
    if (d > 0) censor.clock.setTimeout(() => this.#send(reply, client.port, client.address), d);
    else this.#send(reply, client.port, client.address);
  }

  #send(msg: Buffer, port: number, address: string): void {
    try {
      this.#socket.send(msg, port, address);
    } catch {
      // socket closed during teardown
    }
  }

  #expire(key: string): void {
    const f = this.#flows.get(key);
    if (!f) return;
    this.#flows.delete(key);
    f.upstream.close();
  }
}
