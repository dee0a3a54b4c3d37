/**
 * v2ray's Mux.Cool inside a Shadowsocks stream (src/server/inner-mux.ts), driven frame by frame
 * through a raw test tunnel to the target `v1.mux.cool`: sessions reach their own destinations, a
 * session whose dial is refused is ended with the error bit while the others go on, and one stream
 * cannot open more than 128 sessions (the transport's default, 1024, would take them all: the
 * last case is the control for the limit). Interop with v2ray itself: test/interop/ws-v2ray-to-ladder.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  encodeMuxFrame,
  MUX_OPTION_ERROR,
  MuxCoolDecoder,
  MuxNetwork,
  MuxStatus,
  type MuxFrame,
} from '../../src/protocol/muxcool.js';
import { startDataPlane, type DataPlane } from '../../src/server/index.js';
import { freePort, startEcho, type TestServer } from '../helpers/net.js';
import { openTestTunnel, type TestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';

const METHOD = 'aes-256-gcm';
const PASSWORD = 'inner-mux-test';

describe('Mux.Cool inside a Shadowsocks stream (v1.mux.cool)', { timeout: 60_000 }, () => {
  let plane: DataPlane;
  let echo: TestServer;
  before(async () => {
    plane = await startDataPlane({
      keys: [{ id: 'k', method: METHOD, secret: PASSWORD }],
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: true,
    });
    echo = await startEcho();
  });
  after(async () => {
    await echo.close();
    await plane.close();
  });

  /** A tunnel to v1.mux.cool, and every frame the server sent on it so far. */
  async function muxTunnel(): Promise<{ t: TestTunnel; frames: () => Promise<MuxFrame[]> }> {
    const t = await openTestTunnel({
      port: plane.address.port,
      method: METHOD,
      password: PASSWORD,
      target: { host: 'v1.mux.cool', port: 9527 },
    });
    const dec = new MuxCoolDecoder();
    const seen: MuxFrame[] = [];
    let used = 0;
    return {
      t,
      frames: async () => {
        const all = await t.read(0, 100).catch(() => Buffer.alloc(0));
        if (all.length > used) {
          seen.push(...dec.push(all.subarray(used)));
          used = all.length;
        }
        return seen;
      },
    };
  }
  const newFrame = (id: number, port: number, data?: string): Buffer =>
    encodeMuxFrame(
      {
        sessionId: id,
        status: MuxStatus.New,
        option: 0,
        target: { network: MuxNetwork.Tcp, host: '127.0.0.1', port },
      },
      data === undefined ? undefined : Buffer.from(data),
    );

  it('each session reaches its own destination; a refused one is ended with the error bit, the others go on', async () => {
    const refused = await freePort(); // nothing listens there
    const { t, frames } = await muxTunnel();
    try {
      t.send(
        Buffer.concat([
          newFrame(1, echo.port, 'one'),
          newFrame(2, refused, 'two'),
          newFrame(3, echo.port, 'three'),
        ]),
      );
      const dataOf = (fs: MuxFrame[], id: number): string =>
        Buffer.concat(fs.filter((f) => f.sessionId === id && f.data).map((f) => f.data!)).toString();
      let fs: MuxFrame[] = [];
      await waitFor(
        async () => {
          fs = await frames();
          return (
            dataOf(fs, 1) === 'one' &&
            dataOf(fs, 3) === 'three' &&
            fs.some((f) => f.sessionId === 2 && f.status === MuxStatus.End)
          );
        },
        { timeoutMs: 10_000 },
      );
      const end2 = fs.find((f) => f.sessionId === 2 && f.status === MuxStatus.End)!;
      assert.ok(end2.option & MUX_OPTION_ERROR, 'the refused session ends with the error bit');
      assert.equal(dataOf(fs, 2), '', 'nothing came back for the refused session');
    } finally {
      t.destroy();
    }
  });

  it('one stream holds at most 128 sessions: the 129th New is answered with End and the error bit', async () => {
    const { t, frames } = await muxTunnel();
    try {
      const news: Buffer[] = [];
      for (let id = 1; id <= 129; id++) news.push(newFrame(id, echo.port, 'x'));
      t.send(Buffer.concat(news));
      let fs: MuxFrame[] = [];
      await waitFor(
        async () => {
          fs = await frames();
          return fs.some((f) => f.sessionId === 129 && f.status === MuxStatus.End);
        },
        { timeoutMs: 10_000 },
      );
      const end = fs.find((f) => f.sessionId === 129 && f.status === MuxStatus.End)!;
      assert.ok(end.option & MUX_OPTION_ERROR);
      assert.ok(!fs.some((f) => f.sessionId === 128 && f.status === MuxStatus.End), 'the 128th is open');
    } finally {
      t.destroy();
    }
  });
});
