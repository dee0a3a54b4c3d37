#!/usr/bin/env node
// Captures aes-192-gcm known-answer vectors made by shadowsocks-libev's ss-local (TCP stream and
// UDP datagram, client -> server direction) into test/vectors/libev-aes-192-gcm.json: ss-local
// talks to a fake "server" on loopback that only records the bytes. Run by hand when the vectors
// must change: node test/vectors/gen_libev_aes192.mjs (needs ss-local on PATH).
/* global Buffer, setTimeout, clearTimeout */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const password = 'libev-aes-192-gcm-vector';
const payload = Buffer.from('GET / HTTP/1.1\r\nHost: example.test\r\n\r\n');
const udpPayload = Buffer.from('ladder udp vector');
const target = { host: '10.1.2.3', port: 8080 };
const port = (base) => base + Math.floor(Math.random() * 1000);
const serverPort = port(41000);
const localPort = port(43000);
const deadline = setTimeout(() => {
  console.error('timed out');
  process.exit(1);
}, 15_000);

const tcpWire = [];
const tcpDone = new Promise((resolve) => {
  const srv = createServer((s) => {
    s.on('data', (b) => tcpWire.push(b));
    setTimeout(() => {
      s.destroy();
      srv.close();
      resolve();
    }, 1000);
  }).listen(serverPort, '127.0.0.1');
});
let udpWire;
const udpSrv = createSocket('udp4');
const udpDone = new Promise((resolve) =>
  udpSrv.on('message', (m) => {
    udpWire = m;
    udpSrv.close();
    resolve();
  }),
);
udpSrv.bind(serverPort, '127.0.0.1');

const child = spawn(
  'ss-local',
  [
    '-s',
    '127.0.0.1',
    '-p',
    String(serverPort),
    '-b',
    '127.0.0.1',
    '-l',
    String(localPort),
    '-k',
    password,
    '-m',
    'aes-192-gcm',
    '-u',
  ],
  { stdio: 'ignore' },
);
await new Promise((r) => setTimeout(r, 800));

const ip = Buffer.from(target.host.split('.').map(Number));
const portBuf = Buffer.from([target.port >> 8, target.port & 0xff]);
// TCP: SOCKS5 no-auth, CONNECT 10.1.2.3:8080, then the payload.
const c = connect(localPort, '127.0.0.1');
let stage = 0;
let udpRelay;
c.on('data', () => {
  if (stage === 0) {
    c.write(Buffer.concat([Buffer.from([5, 1, 0, 1]), ip, portBuf]));
    stage = 1;
  } else if (stage === 1) {
    c.write(payload);
    stage = 2;
  }
});
c.write(Buffer.from([5, 1, 0]));
await tcpDone;
c.destroy();
// UDP: UDP ASSOCIATE over a second control connection, then one datagram.
const u = connect(localPort, '127.0.0.1');
await new Promise((resolve) => {
  let st = 0;
  u.on('data', (b) => {
    if (st === 0) {
      u.write(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
      st = 1;
    } else {
      udpRelay = (b[8] << 8) | b[9];
      resolve();
    }
  });
  u.write(Buffer.from([5, 1, 0]));
});
const us = createSocket('udp4');
us.send(Buffer.concat([Buffer.from([0, 0, 0, 1]), ip, portBuf, udpPayload]), udpRelay, '127.0.0.1');
await udpDone;
us.close();
u.destroy();
child.kill('SIGTERM');
clearTimeout(deadline);

const out = {
  generator: 'test/vectors/gen_libev_aes192.mjs: shadowsocks-libev ss-local, client -> server',
  method: 'aes-192-gcm',
  password,
  target,
  tcp: { payload: payload.toString('hex'), wire: Buffer.concat(tcpWire).toString('hex') },
  udp: { payload: udpPayload.toString('hex'), wire: udpWire.toString('hex') },
};
writeFileSync(new URL('./libev-aes-192-gcm.json', import.meta.url), `${JSON.stringify(out, null, 2)}\n`);
console.log('wrote test/vectors/libev-aes-192-gcm.json');
