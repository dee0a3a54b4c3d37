import { readFileSync } from 'node:fs';
import { spawnPeer, startSsLocal, startSsServer } from '../test/helpers/peers.js';
import { freePort } from '../test/helpers/net.js';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../src/transport/udp-socks5.js';
const method = 'aes-256-gcm';
const password = 'bench-pw';
const st = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return { u: Number(f[11]) * 10, s: Number(f[12]) * 10 }; };
const echo = await startUdpEcho();
for (const kind of ['libev', 'ladder', 'libev', 'ladder']) {
  let server;
  if (kind === 'libev') server = await startSsServer({ method, password, timeout: 600, extraArgs: ['-u'] });
  else { const port = await freePort(); server = Object.assign(await spawnPeer('ladder server', process.execPath, ['--import', 'tsx', 'bench/sip022-node.ts', 'server', '--port', String(port), '--method', method, '--password', password, '--udp'], { waitPort: port, waitTimeoutMs: 60000 }), { port }); }
  const client = await startSsLocal({ method, password, serverPort: server.port, timeout: 600, extraArgs: ['-u'] });
  const a = await socks5UdpAssociate(client.socksPort);
  const t = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.port };
  await udpEchoRun(a, t, 2000, 64, { window: 32 });
  const s0 = st(server.pid), c0 = st(client.pid);
  const r = await udpEchoRun(a, t, 30000, 64, { window: 32, lossTimeoutMs: 500, deadlineMs: 60000 });
  const s1 = st(server.pid), c1 = st(client.pid);
  const per = (x: number) => (x * 1000 / r.received).toFixed(1);
  console.log(kind, (r.received / (r.elapsedMs / 1000)).toFixed(0), 'rt/s; server µs/rt user', per(s1.u - s0.u), 'sys', per(s1.s - s0.s), '; ss-local user', per(c1.u - c0.u), 'sys', per(c1.s - c0.s));
  a.close(); await client.stop(5000); await server.stop(5000);
}
await echo.close();
