/**
 * Fuzzing the wire codecs that read a peer's bytes: SOCKS5 (greeting, auth, request, UDP
 * header), the Shadowsocks/SOCKS address, SIP022 request headers (fixed and variable: type byte,
 * timestamp, lengths, padding, sealed with the right key so the plaintext parser is what is
 * reached), SIP022 and 2017 UDP packets, UDP-over-TCP, Mux.Cool, DNS (messages and TCP framing,
 * the SERVFAIL answer), the TLS ClientHello reader. Contract: a ProtocolError or a result, never
 * another throw or a hang; incremental decoders give the same frames for any slicing of a stream.
 * Method and counts: test/fuzz/fuzz.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isProtocolError } from '../../src/protocol/errors.js';
import { decodeAddress, encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import {
  encodeGreeting,
  encodeRequest,
  encodeUdpHeader,
  encodeUserPassAuth,
  parseGreeting,
  parseRequest,
  parseUdpDatagram,
  parseUserPassAuth,
} from '../../src/protocol/socks5/socks5.js';
import { encodeUotAddress, encodeUotDatagram, encodeUotRequest, UotReader } from '../../src/protocol/uot.js';
import {
  encodeMuxFrame,
  MuxCoolDecoder,
  MuxNetwork,
  MuxStatus,
  looksLikeMuxCoolNew,
} from '../../src/protocol/muxcool.js';
import { decodeDns, servfailFor, TcpFrameDecoder, frameTcp } from '../../src/protocol/dns/message.js';
import { encodeRecord, parseClientHelloRecord } from '../../src/protocol/tls/clienthello.js';
import { Aead2022RequestDecoder } from '../../src/protocol/shadowsocks/aead2022.js';
import { getAead2022Method } from '../../src/protocol/shadowsocks/methods2022.js';
import { deriveSessionSubkey } from '../../src/protocol/shadowsocks/kdf2022.js';
import { cipher } from '../../src/protocol/shadowsocks/cipher.js';
import { openClientPacket2022, sealClientPacket2022 } from '../../src/protocol/shadowsocks/udp2022.js';
import { decodeUdp2017, encodeUdp2017 } from '../../src/protocol/shadowsocks/udp.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { byteCases, fuzz, rng, show } from './fuzz.js';

const typed = isProtocolError;
const ADDRS = [
  toSocksAddress('192.0.2.1', 443),
  toSocksAddress('2001:db8::1', 53),
  toSocksAddress('example.com', 80),
];

test('fuzz: SOCKS5 greeting, auth, request, UDP header and address', () => {
  const greeting = [encodeGreeting([0, 2]), encodeGreeting([0])];
  fuzz('parseGreeting', byteCases('greet', greeting, 500), parseGreeting, { typed });
  fuzz('parseUserPassAuth', byteCases('auth', [encodeUserPassAuth('user', 'pw')], 500), parseUserPassAuth, {
    typed,
  });
  const requests = ADDRS.map((a) => encodeRequest(1, a));
  fuzz('parseRequest', byteCases('req', requests, 1500), parseRequest, {
    typed,
    accepted: (input: Buffer, out) => {
      const r = out as ReturnType<typeof parseRequest>;
      if (r) assert.ok(r.length <= input.length, `length past the input: ${show(input)}`);
    },
  });
  const udp = ADDRS.map((a) => Buffer.concat([encodeUdpHeader(a), Buffer.from('payload')]));
  fuzz('parseUdpDatagram', byteCases('udp', udp, 1500), parseUdpDatagram, { typed });
  fuzz('decodeAddress', byteCases('addr', ADDRS.map(encodeAddress), 1500), (b) => decodeAddress(b), {
    typed,
  });
});

/** Feed `stream` whole, byte by byte and in random slices: the same frames, or the same refusal. */
function sliced<T>(label: string, stream: Buffer, make: () => { push(b: Buffer): T[] }): void {
  const run = (cuts: number[]): { frames: unknown[] } | { error: string } => {
    const d = make();
    const frames: unknown[] = [];
    let at = 0;
    try {
      for (const end of [...cuts, stream.length]) {
        // Copies: a decoder may keep views of what it was given.
        for (const f of d.push(Buffer.from(stream.subarray(at, end)))) frames.push(normalise(f));
        at = end;
      }
    } catch (err) {
      if (!typed(err)) assert.fail(`${label}: untyped throw ${String(err)} for ${show(stream)}`);
      return { error: (err as Error).message };
    }
    return { frames };
  };
  const whole = run([]);
  const r = rng(`${label}:${stream.length}`);
  const randomCuts: number[] = [];
  for (let at = 0; at < stream.length;) randomCuts.push((at += r.range(1, 40)));
  for (const cuts of [[...stream.keys()].slice(1), randomCuts.filter((c) => c < stream.length)]) {
    const got = run(cuts);
    // A refusal may come at a different frame for another slicing, but never a refusal one way and success the other.
    assert.equal(
      'error' in got,
      'error' in whole,
      `${label}: slicing changes the verdict for ${show(stream)}`,
    );
    if ('frames' in whole && 'frames' in got)
      assert.deepEqual(got.frames, whole.frames, `${label}: slicing changes the frames for ${show(stream)}`);
  }
}

function normalise(v: unknown): unknown {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  return v;
}

test('fuzz: Mux.Cool decoder: typed errors, same frames for any slicing', () => {
  const target = { network: MuxNetwork.Tcp, host: 'example.com', port: 443 };
  const frames = Buffer.concat([
    encodeMuxFrame({ sessionId: 1, status: MuxStatus.New, option: 0, target }, Buffer.from('hello')),
    encodeMuxFrame({ sessionId: 1, status: MuxStatus.Keep, option: 0 }, Buffer.alloc(300, 1)),
    encodeMuxFrame({
      sessionId: 2,
      status: MuxStatus.New,
      option: 0,
      target: { network: MuxNetwork.Udp, host: '2001:db8::1', port: 53 },
    }),
    encodeMuxFrame({ sessionId: 1, status: MuxStatus.End, option: 0 }),
    encodeMuxFrame({ sessionId: 0, status: MuxStatus.KeepAlive, option: 0 }),
  ]);
  let n = 0;
  for (const c of byteCases('mux', [frames], 400)) {
    sliced('MuxCoolDecoder', c, () => new MuxCoolDecoder());
    const v = looksLikeMuxCoolNew(c);
    assert.ok(v === 'yes' || v === 'no' || v === 'more');
    n++;
  }
  assert.ok(n > 400);
});

test('fuzz: UDP-over-TCP reader (v1 and v2): typed errors, same datagrams for any slicing', () => {
  const v1 = Buffer.concat(ADDRS.map((a) => encodeUotDatagram(a, Buffer.from(`to ${a.host}`))));
  const v2 = Buffer.concat([
    encodeUotRequest({ connect: false, destination: ADDRS[0]! }),
    ...ADDRS.map((a) => encodeUotDatagram(a, Buffer.alloc(20, 3))),
  ]);
  const v2c = Buffer.concat([
    encodeUotRequest({ connect: true, destination: ADDRS[2]! }),
    encodeUotDatagram(undefined, Buffer.from('x')),
    encodeUotDatagram(undefined, Buffer.alloc(0)),
  ]);
  for (const c of byteCases(
    'uot1',
    [v1, Buffer.concat([encodeUotAddress(ADDRS[1]!), Buffer.from([0, 1, 9])])],
    300,
  ))
    sliced('UotReader v1', c, () => new UotReader(1));
  for (const c of byteCases('uot2', [v2, v2c], 300)) sliced('UotReader v2', c, () => new UotReader(2));
});

const QUERY = Buffer.from('abcd01000001000000000000076578616d706c6503636f6d0000010001', 'hex');
const ANSWER = Buffer.from(
  'abcd81800001000100000000076578616d706c6503636f6d0000010001c00c000100010000012c00045db8d822',
  'hex',
);

test('fuzz: DNS messages, TCP framing and the SERVFAIL answer', () => {
  fuzz('decodeDns', byteCases('dns', [QUERY, ANSWER], 2000), decodeDns, { typed });
  fuzz('servfailFor', byteCases('servfail', [QUERY, ANSWER], 2000), servfailFor, { typed });
  for (const c of byteCases('dns-tcp', [Buffer.concat([frameTcp(QUERY), frameTcp(ANSWER)])], 200))
    sliced('TcpFrameDecoder', c, () => new TcpFrameDecoder());
});

test('fuzz: TLS ClientHello reader', () => {
  const sni = Buffer.from('example.com');
  const ext = Buffer.concat([
    Buffer.from([0, 0, 0, sni.length + 5, 0, sni.length + 3, 0, 0, sni.length]),
    sni,
    Buffer.from([0, 0x2b, 0, 3, 2, 3, 4]),
  ]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0, 0, 2, 0x13, 1, 1, 0]),
    Buffer.from([ext.length >> 8, ext.length & 0xff]),
    ext,
  ]);
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  const record = encodeRecord(0x16, 0x0301, hs);
  assert.equal(parseClientHelloRecord(record).serverName?.name, 'example.com');
  fuzz('parseClientHelloRecord', byteCases('hello', [record], 3000), parseClientHelloRecord, { typed });
});

const NOW = 1_800_000_000_000;

test('fuzz: SIP022 request header plaintext (type, timestamp, lengths, padding) sealed with the right key', () => {
  const method = getAead2022Method('2022-blake3-aes-128-gcm');
  const key = Buffer.alloc(16, 5);
  const salt = Buffer.alloc(16, 6);
  const subkey = deriveSessionSubkey(key, salt);
  const variable = Buffer.concat([
    encodeAddress(ADDRS[2]!),
    Buffer.from([0, 3, 0, 0, 0]),
    Buffer.from('GET'),
  ]);
  const fixed = Buffer.alloc(11);
  fixed[0] = 0;
  fixed.writeBigUInt64BE(BigInt(NOW / 1000), 1);
  fixed.writeUInt16BE(variable.length, 9);
  // The sample is fixed||variable in plaintext; each case is split back at 11 and sealed.
  const plain = Buffer.concat([fixed, variable]);
  let reached = 0;
  fuzz(
    'Aead2022RequestDecoder',
    byteCases('sip022', [plain], 3000),
    (p: Buffer) => {
      if (p.length < 11) return undefined;
      const f = p.subarray(0, 11);
      const v = p.subarray(11);
      const session = cipher().session(method.aead.cipher, subkey); // nonces from 0
      // The sealed variable part is as long as the fixed header says, whatever is in it.
      const wire = Buffer.concat([salt, session.seal(f), v.length > 0 ? session.seal(v) : Buffer.alloc(0)]);
      const d = new Aead2022RequestDecoder(method, { key });
      const out = d.push(wire, NOW);
      if (d.header) reached++;
      return out;
    },
    { typed },
  );
  assert.ok(reached > 100, `only ${reached} cases reached a parsed header`);
});

test('fuzz: SIP022 and 2017 UDP packets', () => {
  const m22 = getAead2022Method('2022-blake3-aes-256-gcm');
  const key = Buffer.alloc(32, 1);
  const packet = sealClientPacket2022(m22, key, {
    sessionId: Buffer.alloc(8, 2),
    packetId: 1n,
    address: ADDRS[0]!,
    payload: Buffer.from('hi'),
    nowMs: NOW,
  });
  fuzz(
    'openClientPacket2022',
    byteCases('udp2022', [packet], 1500),
    (p) => openClientPacket2022(m22, p, NOW, { key }),
    { typed },
  );
  const m = getAeadMethod('chacha20-ietf-poly1305');
  const mk = Buffer.alloc(32, 4);
  const p17 = encodeUdp2017(m, mk, ADDRS[2]!, Buffer.from('payload'));
  fuzz('decodeUdp2017', byteCases('udp2017', [p17], 1500), (p) => decodeUdp2017(m, mk, p), { typed });
});
