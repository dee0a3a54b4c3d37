/**
 * Time for the server to authenticate a connection's first packet, in-process and synchronous:
 * the first write of a real client is handed to ShadowsocksServer.handleConnection() on a fake
 * socket, and the 'data' dispatch (key lookup, header authentication, replay check, address
 * decode) is timed, wall clock and CPU. Scenarios:
 *
 *   2022 + SIP023 identity headers, 1 user vs 10,000 users on the port (target: within 1.2x)
 *   2022 single-user key (no identity header)
 *   SIP004, 1 key; 1,000 keys worst case (the key is last, client IP never seen);
 *   1,000 keys returning client (same IP used that key before: tried first)
 *
 * The destination is a loopback address on a server that refuses private destinations, so no
 * connection is made after authentication (that part is identical for every scenario).
 *
 * Usage: node --import tsx bench/sip022-auth.ts [--n 2000] [--rounds 5] [--json FILE]
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { AeadEncoder } from '../src/protocol/shadowsocks/aead.js';
import { Aead2022RequestEncoder } from '../src/protocol/shadowsocks/aead2022.js';
import { evpBytesToKey } from '../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../src/protocol/shadowsocks/methods.js';
import { getAead2022Method } from '../src/protocol/shadowsocks/methods2022.js';
import { encodeAddress } from '../src/protocol/socks5/address.js';
import { ShadowsocksServer } from '../src/server/server.js';
import { ManualClock } from '../src/shared/clock.js';
import type { RuntimeKey } from '../src/shared/control.js';
import { median } from './stats.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const N = Number(arg('--n', '2000'));
const ROUNDS = Number(arg('--rounds', '5'));
const JSON_OUT = arg('--json', '');
const DEADLINE = Date.now() + Number(arg('--cap-s', '240')) * 1000;

/** Enough of a net.Socket for Connection: events in, pause/resume/end/destroy out. */
class FakeSocket extends EventEmitter {
  constructor(readonly remoteAddress: string) {
    super();
  }
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  write(): boolean {
    return true;
  }
  end(cb?: () => void): this {
    cb?.();
    return this;
  }
  destroy(): this {
    this.emit('close');
    return this;
  }
}

interface Scenario {
  name: string;
  keys: RuntimeKey[];
  /** First writes to feed, one per connection, and the client IP of each. */
  packets(clock: ManualClock): { ip: string; bytes: Buffer }[];
  /** Expected key id of each authentication. */
  keyId: string;
  /** Connections per round, when not --n (the 1,000-key worst case costs tens of ms each). */
  count?: number;
}

const b64 = (b: Buffer): string => b.toString('base64');
const TARGET = { type: 'ipv4' as const, host: '127.0.0.1', port: 9 };
const INITIAL = Buffer.alloc(100, 0x61);

/** A client IP never used before in this run (so no recently-used key applies). */
let ipCounter = 0;
function ip(_i: number): string {
  const i = ++ipCounter;
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

function scenario2022Identity(users: number): Scenario {
  const m = getAead2022Method('2022-blake3-aes-256-gcm');
  const ipsk = randomBytes(32);
  const upsks = Array.from({ length: users }, () => randomBytes(32));
  const which = users - 1;
  return {
    name: `2022 aes-256 identity, ${users.toLocaleString('en')} user${users === 1 ? '' : 's'}`,
    keys: upsks.map((u, i) => ({ id: `u${i}`, method: m.name, secret: `${b64(ipsk)}:${b64(u)}` })),
    keyId: `u${which}`,
    packets: (clock) =>
      Array.from({ length: N }, (_, i) => ({
        ip: ip(i),
        bytes: new Aead2022RequestEncoder(m, upsks[which]!, { identityKeys: [ipsk] }).encodeHeader(
          TARGET,
          INITIAL,
          clock.now(),
        ),
      })),
  };
}

function scenario2022Single(): Scenario {
  const m = getAead2022Method('2022-blake3-aes-256-gcm');
  const k = randomBytes(32);
  return {
    name: '2022 aes-256 single-user key',
    keys: [{ id: 'k', method: m.name, secret: b64(k) }],
    keyId: 'k',
    packets: (clock) =>
      Array.from({ length: N }, (_, i) => ({
        ip: ip(i),
        bytes: new Aead2022RequestEncoder(m, k).encodeHeader(TARGET, INITIAL, clock.now()),
      })),
  };
}

function scenario2017(keys: number, returning: boolean): Scenario {
  const m = getAeadMethod('aes-256-gcm');
  const pws = Array.from({ length: keys }, (_, i) => `password-${i}-${randomBytes(4).toString('hex')}`);
  const which = keys - 1;
  const master = evpBytesToKey(pws[which]!, m.keySize);
  return {
    name:
      keys === 1
        ? 'SIP004 aes-256-gcm, 1 key'
        : `SIP004 aes-256-gcm, ${keys.toLocaleString('en')} keys, ${returning ? 'returning client (recent key first)' : 'worst case (last key, new IP)'}`,
    keys: pws.map((p, i) => ({ id: `k${i}`, method: m.name, secret: p })),
    keyId: `k${which}`,
    ...(keys > 1 && !returning ? { count: Math.max(20, Math.floor(N / 20)) } : {}),
    packets: () =>
      Array.from({ length: keys > 1 && !returning ? Math.max(20, Math.floor(N / 20)) : N }, (_, i) => {
        const enc = new AeadEncoder(m, master);
        const first = enc.encode(Buffer.concat([encodeAddress(TARGET), INITIAL])); // salt included
        return { ip: returning ? '10.0.0.1' : ip(i), bytes: first };
      }),
  };
}

interface Measured {
  name: string;
  /** Connections per round. */
  n: number;
  /** Median over rounds of the mean per authentication. */
  wallUs: number;
  cpuUs: number;
  rounds: { wallUs: number; cpuUs: number }[];
}

interface Runner {
  s: Scenario;
  round(): { wallUs: number; cpuUs: number };
}

function prepare(s: Scenario): Runner {
  const clock = new ManualClock(Date.now());
  let authed = 0;
  let wrong = 0;
  const server = new ShadowsocksServer({
    keys: s.keys,
    clock,
    replayCapacity: N * (ROUNDS + 2),
    hooks: {
      onAuthenticated: (e) => {
        authed++;
        if (e.keyId !== s.keyId) wrong++;
      },
    },
  });
  return {
    s,
    round: () => {
      const packets = s.packets(clock);
      const sockets = packets.map((p) => new FakeSocket(p.ip));
      for (const sock of sockets) server.handleConnection(sock as unknown as Socket);
      const before = authed;
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < packets.length; i++) sockets[i]!.emit('data', packets[i]!.bytes);
      const t1 = process.hrtime.bigint();
      const c1 = process.cpuUsage(c0);
      for (const sock of sockets) sock.destroy();
      if (authed - before !== packets.length)
        throw new Error(`${s.name}: ${authed - before}/${packets.length} authenticated`);
      if (wrong > 0) throw new Error(`${s.name}: ${wrong} authentications found the wrong key`);
      return {
        wallUs: Number(t1 - t0) / 1000 / packets.length,
        cpuUs: (c1.user + c1.system) / packets.length,
      };
    },
  };
}

const scenarios: Scenario[] = [
  scenario2022Identity(1),
  scenario2022Identity(10_000),
  scenario2022Single(),
  scenario2017(1, false),
  scenario2017(1000, false),
  scenario2017(1000, true),
];

// Rounds interleave the scenarios, so drift in machine load hits each alike; round 0 warms up
// (JIT, and the returning client's first use of its key from its IP).
const runners = scenarios.map(prepare);
const perScenario = runners.map(() => [] as { wallUs: number; cpuUs: number }[]);
for (let r = 0; r <= ROUNDS && Date.now() < DEADLINE; r++) {
  runners.forEach((run, i) => {
    const m = run.round();
    if (r > 0) perScenario[i]!.push(m);
  });
}
const results: Measured[] = runners.map((run, i) => ({
  name: run.s.name,
  n: run.s.count ?? N,
  wallUs: median(perScenario[i]!.map((x) => x.wallUs)),
  cpuUs: median(perScenario[i]!.map((x) => x.cpuUs)),
  rounds: perScenario[i]!,
}));

const id1 = results.find((r) => r.name.includes('identity, 1 user'));
const id10k = results.find((r) => r.name.includes('10,000 users'));
console.log(`\nServer time to authenticate one connection (first packet), median of ${ROUNDS} rounds x ${N}`);
console.log('| scenario | connections per round | wall us | CPU us |');
console.log('|---|---:|---:|---:|');
for (const r of results)
  console.log(`| ${r.name} | ${r.n} | ${r.wallUs.toFixed(1)} | ${r.cpuUs.toFixed(1)} |`);
if (id1 && id10k) {
  const ratio = id10k.cpuUs / id1.cpuUs;
  const wallRatio = id10k.wallUs / id1.wallUs;
  console.log(
    `\n10,000 users / 1 user (2022 identity): CPU ${ratio.toFixed(2)}x, wall ${wallRatio.toFixed(2)}x (target <= 1.2x): ${ratio <= 1.2 ? 'PASS' : 'FAIL'}`,
  );
}
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ n: N, rounds: ROUNDS, results }, null, 2));
