// Every entry a subscription hands out carries traffic when fed to a real client: a managed server
// with its web front (plain HTTP on loopback) and the plain-HTTP dynamic-key listener; each format
// fetched from /sub/{token}/{format} and each entry given to shadowsocks-libev's ss-local (with
// ss-v2ray-plugin for the WebSocket entries), to v2ray 4.34 (Outline's WebSocket endpoint: raw
// streams) and to our own client; an echo through each. Negative control: the same entry with a
// wrong password carries nothing.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startManaged } from '../../src/cli/managed.js';
import { startClient } from '../../src/client/index.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { freePort } from '../helpers/net.js';
import { peerSkip, requirePeer, spawnPeer, startSsLocal, type Method, type Peer } from '../helpers/peers.js';
import { echoVia } from '../helpers/transfer.js';
import { waitFor } from '../helpers/wait.js';
import { tempDir } from './helpers.js';
import { echoServer, flags } from './managed-helpers.js';
import { checkClash, checkSingBox, checkSip008, clashPluginOpts, parseOutline } from './sub-formats.js';

type Json = Record<string, unknown>;

/** One echo of a few KiB through a SOCKS5 port, retried while a plugin comes up (bounded). */
async function carries(socksPort: number, echoPort: number, timeoutMs = 20_000): Promise<boolean> {
  const body = randomBytes(4096 + Math.floor(Math.random() * 4096));
  try {
    await waitFor(
      async () => {
        try {
          const r = await echoVia(
            { proxyPort: socksPort },
            { host: '127.0.0.1', port: echoPort },
            body,
            3000,
          );
          return r.gotSha.equals(r.sentSha);
        } catch {
          return false;
        }
      },
      { timeoutMs, intervalMs: 250, message: 'an echo through the entry' },
    );
    return true;
  } catch {
    return false;
  }
}

describe(
  'subscription entries carry traffic in real clients',
  { skip: peerSkip('ss-local', 'ss-v2ray-plugin', 'v2ray') },
  () => {
    test('SIP008, Clash, sing-box entries via ss-local (+ v2ray-plugin); base64 links and Outline via our client and v2ray', async (t) => {
      const dir = tempDir(t);
      const echoPort = await echoServer(t);
      const m = await startManaged(
        { ...flags(dir), dynamicListen: '127.0.0.1:0', webPort: '0', webHost: '127.0.0.1' },
        silentLogger,
        { enforceIntervalMs: 300 },
      );
      t.after(() => m.close());
      assert.ok(m.web && m.dynamicAddress);
      const key = (await m.store.listKeys())[0]!;
      const method = key.method as Method;
      const base = `${m.dynamicAddress}/sub/${key.accessToken}`;
      const fetchFormat = async (f: string): Promise<string> => {
        const r = await fetch(`${base}/${f}`);
        assert.equal(r.status, 200, f);
        return r.text();
      };
      const peers: Peer[] = [];
      t.after(() => Promise.all(peers.map((p) => p.stop())));
      const viaSsLocal = async (
        what: string,
        e: { server: string; port: number; password: string; pluginOpts?: string | undefined },
      ): Promise<void> => {
        const p = await startSsLocal({
          method,
          password: e.password,
          serverHost: e.server,
          serverPort: e.port,
          ...(e.pluginOpts !== undefined
            ? { extraArgs: ['--plugin', 'ss-v2ray-plugin', '--plugin-opts', e.pluginOpts] }
            : {}),
        });
        peers.push(p);
        assert.ok(await carries(p.socksPort, echoPort), `${what} carries traffic\n${p.output()}`);
        await p.stop();
      };
      const viaLadder = async (what: string, ssKey: string): Promise<void> => {
        const c = await startClient({ key: ssKey, socks: '127.0.0.1:0' });
        try {
          assert.ok(await carries(c.socksAddress!.port, echoPort), `${what} carries traffic`);
        } finally {
          await c.close();
        }
      };

      // SIP008: the web entry (v2ray-plugin) and the raw one.
      const sip = checkSip008(await fetchFormat('sip008'));
      assert.equal(sip.servers.length, 2);
      assert.equal(sip.servers[0]!.server_port, m.web.service.front.port);
      for (const s of sip.servers)
        await viaSsLocal(`SIP008 ${String(s.remarks)}`, {
          server: String(s.server),
          port: Number(s.server_port),
          password: String(s.password),
          pluginOpts: s.plugin_opts as string | undefined,
        });

      // Negative control: the raw SIP008 entry with a wrong password carries nothing.
      const bad = await startSsLocal({
        method,
        password: `${String(sip.servers[1]!.password)}x`,
        serverPort: Number(sip.servers[1]!.server_port),
      });
      peers.push(bad);
      assert.equal(await carries(bad.socksPort, echoPort, 3000), false, 'a wrong password carries nothing');
      await bad.stop();

      // Clash/mihomo proxies, fed to ss-local the way mihomo would dial them; the HTTPUpgrade ones
      // (v2ray-http-upgrade, which v2ray-plugin lacks) to our client as the same SIP002 options.
      const clash = checkClash(await fetchFormat('clash'));
      assert.deepEqual(
        clash.map((p) => (p['plugin-opts'] as Json | undefined)?.['v2ray-http-upgrade'] === true),
        [false, true, false],
      );
      for (const p of clash) {
        const o = p['plugin-opts'] as Json | undefined;
        if (o?.['v2ray-http-upgrade'] === true) {
          await viaLadder(
            `Clash ${String(p.name)}`,
            formatSsUrl({
              method,
              password: String(p.password),
              host: String(p.server),
              port: Number(p.port),
              plugin: 'v2ray-plugin',
              pluginOptions: clashPluginOpts(o),
            }),
          );
          continue;
        }
        await viaSsLocal(`Clash ${String(p.name)}`, {
          server: String(p.server),
          port: Number(p.port),
          password: String(p.password),
          pluginOpts: p.plugin === 'v2ray-plugin' ? clashPluginOpts(p['plugin-opts'] as Json) : undefined,
        });
      }

      // sing-box outbounds: plugin_opts is a SIP003 string, as ss-local takes it.
      for (const o of checkSingBox(await fetchFormat('sing-box')))
        await viaSsLocal(`sing-box ${String(o.tag)}`, {
          server: String(o.server),
          port: Number(o.server_port),
          password: String(o.password),
          pluginOpts: o.plugin_opts as string | undefined,
        });

      // base64 list: each ss:// link as it is, in our client (v2ray-plugin links over the web front).
      const links = Buffer.from(await fetchFormat('base64'), 'base64')
        .toString('utf8')
        .split('\n');
      assert.equal(links.length, 2);
      for (const l of links) await viaLadder(`base64 link ${l.slice(l.indexOf('#'))}`, l);

      // Outline YAML. An app with WebSocket support: Outline's websocket endpoint is raw
      // Shadowsocks over WebSocket, the wire v2ray's ws transport speaks.
      const yaml = await fetchFormat('outline');
      const ws = parseOutline(yaml, true);
      assert.ok('tunnel' in ws && 'websocket' in ws.tunnel.tcp, yaml);
      const url = new URL(ws.tunnel.tcp.websocket);
      const socksPort = await freePort();
      const vdir = mkdtempSync(join(tmpdir(), 'ladder-sub-v2ray-'));
      t.after(() => rmSync(vdir, { recursive: true, force: true }));
      const config = {
        log: { loglevel: 'warning', access: 'none' },
        inbounds: [{ listen: '127.0.0.1', port: socksPort, protocol: 'socks', settings: { auth: 'noauth' } }],
        outbounds: [
          {
            protocol: 'shadowsocks',
            settings: {
              servers: [
                {
                  address: url.hostname,
                  port: Number(url.port),
                  method: ws.tunnel.cipher,
                  password: ws.tunnel.secret,
                },
              ],
            },
            streamSettings: { network: 'ws', wsSettings: { path: url.pathname } },
          },
        ],
      };
      writeFileSync(join(vdir, 'config.json'), JSON.stringify(config));
      const v2 = await spawnPeer('v2ray', requirePeer('v2ray'), ['-config', join(vdir, 'config.json')], {
        waitPort: socksPort,
      });
      peers.push(v2);
      assert.ok(
        await carries(socksPort, echoPort),
        `Outline WebSocket endpoint via v2ray 4.34\n${v2.output()}`,
      );
      await v2.stop();

      // An app without WebSocket support takes the next option: raw host:port. Our client with the
      // fields as Outline reads them; the legacy JSON the same way.
      for (const [what, body, wsSupport] of [
        ['Outline YAML, raw option', yaml, false],
        ['Outline legacy JSON', await fetchFormat('outline-json'), true],
      ] as const) {
        const r = parseOutline(body, wsSupport);
        assert.ok('tunnel' in r && 'direct' in r.tunnel.tcp, what);
        const [host, port] = r.tunnel.tcp.direct.split(':');
        await viaLadder(
          what,
          formatSsUrl({
            method: r.tunnel.cipher,
            password: r.tunnel.secret,
            host: host!,
            port: Number(port),
          }),
        );
      }

      // Disabled: the Outline config says so, and the other formats hand out nothing usable.
      await m.store.updateKey(key.id, { enabled: false });
      await m.enforcer.refresh();
      const off = parseOutline(await fetchFormat('outline'));
      assert.ok('error' in off && off.error.message === 'Access key disabled');
      assert.deepEqual(checkSip008(await fetchFormat('sip008')).servers, []);
    });
  },
);
