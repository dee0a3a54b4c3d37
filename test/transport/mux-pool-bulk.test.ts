/**
 * MuxPool keeps short exchanges off carriers that carry a bulk session (one that moved 1 MiB):
 * Mux.Cool has no per-session priority, so a request opened on the carrier of a download waits
 * behind the download's bytes in both ends' buffers and the network's. Once a session turns
 * bulk the pool opens a spare carrier (at most 6 in all), and new sessions go there;
 * LADDER_MUX_BULK_APART=0 (read per pool) makes them share, as before: the negative control.
 */
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { MuxConnection, type MuxSession } from '../../src/transport/mux.js';
import { MuxPool, type WsTransportOptions } from '../../src/transport/ws-dialer.js';
import { readExactly } from '../helpers/net.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;

/** A Mux.Cool server on loopback: "bulk" gets 2 MiB (the session stays open), "ping" gets "pong". */
let server: net.Server;
let port = 0;
/** The carrier (accept order) of each session, by what it asked. */
const seen: Array<{ ask: string; carrier: number }> = [];
const sockets = new Set<net.Socket>();

before(async () => {
  let accepted = 0;
  server = net.createServer((sock) => {
    const carrier = accepted++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    new MuxConnection(sock, {
      role: 'server',
      onSession: (s: MuxSession) => {
        s.on('error', () => {});
        s.once('data', (d: Buffer) => {
          const ask = d.toString();
          seen.push({ ask, carrier });
          if (ask === 'bulk') s.write(Buffer.alloc(2 * MiB, 7));
          else s.end('pong');
        });
      },
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

const dial = (): Promise<Duplex> =>
  new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });

async function run(apart: boolean): Promise<{ carriers: number; bulkOn: number; pingOn: number }> {
  process.env.LADDER_MUX_BULK_APART = apart ? '1' : '0';
  const pool = new MuxPool({ cover: false } as WsTransportOptions, dial);
  delete process.env.LADDER_MUX_BULK_APART;
  seen.length = 0;
  try {
    const download = await pool.open();
    download.on('error', () => {});
    download.write('bulk');
    await readExactly(download as net.Socket, 2 * MiB, 10_000);
    if (apart) await waitFor(() => pool.carriers === 2, { timeoutMs: 5000 });
    const page = await pool.open();
    page.on('error', () => {});
    page.write('ping');
    assert.equal((await readExactly(page as net.Socket, 4, 10_000)).toString(), 'pong');
    return {
      carriers: pool.carriers,
      bulkOn: seen.find((x) => x.ask === 'bulk')!.carrier,
      pingOn: seen.find((x) => x.ask === 'ping')!.carrier,
    };
  } finally {
    pool.close();
  }
}

describe('MuxPool and bulk sessions', () => {
  it('opens a spare carrier once a session turns bulk, and the next session goes there', async () => {
    const r = await run(true);
    assert.equal(r.carriers, 2);
    assert.notEqual(r.pingOn, r.bulkOn, 'the short exchange is not on the download carrier');
  });

  it('a spare still being dialled when the pool closes is not kept open', async () => {
    let slow = false;
    const slowDial = async (): Promise<Duplex> => {
      const c = await dial();
      if (slow) await new Promise((r) => setTimeout(r, 300));
      return c;
    };
    const pool = new MuxPool({ cover: false } as WsTransportOptions, slowDial);
    const download = await pool.open();
    download.on('error', () => {});
    slow = true; // the spare, dialled once the download turns bulk, arrives after close()
    download.write('bulk');
    await readExactly(download as net.Socket, 2 * MiB, 10_000);
    pool.close();
    await waitFor(() => sockets.size === 0, { timeoutMs: 3000 });
  });

  it('LADDER_MUX_BULK_APART=0: the short exchange shares the download carrier (negative control)', async () => {
    const r = await run(false);
    assert.equal(r.carriers, 1);
    assert.equal(r.pingOn, r.bulkOn);
  });
});
