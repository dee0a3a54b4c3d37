import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import {
  durationMs,
  parseIsoDate,
  parseMoment,
  parseRate,
  formatRate,
  parseSize,
  formatHostPort,
  isHostName,
  parseDuration,
  parseHostPort,
  parseIntInRange,
  parsePort,
  parseSeconds,
  ParseError,
  type ParseErrorCode,
} from './parse.js';
import { bindErrorCode, bindUdp, listen } from './listen.js';

/** Throws a ParseError with this code and a one-line message that names `what` and quotes the text. */
function refuses(fn: () => unknown, code: ParseErrorCode, what: string, text: string, why: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ParseError, String(e));
    assert.equal(e.code, code);
    assert.ok(!e.message.includes('\n'), e.message);
    assert.ok(e.message.startsWith(what), e.message);
    assert.ok(e.message.includes(`"${text}"`), e.message);
    assert.match(e.message, why);
    return true;
  });
}

test('parseHostPort: listen addresses (bare port, :port, default host)', () => {
  const l = { defaultHost: '127.0.0.1' };
  assert.deepEqual(parseHostPort('127.0.0.1:1080', '--socks', l), { host: '127.0.0.1', port: 1080 });
  assert.deepEqual(parseHostPort('[::1]:8118', '--socks', l), { host: '::1', port: 8118 });
  assert.deepEqual(parseHostPort(' 1080 ', '--socks', l), { host: '127.0.0.1', port: 1080 });
  assert.deepEqual(parseHostPort(':0', '--socks', l), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseHostPort('localhost:9', '--socks', l), { host: 'localhost', port: 9 });
  const forms = /expected host:port, \[ipv6\]:port or a port number/;
  for (const bad of ['', 'host', '::1:80', 'a:b', 'a b:1', '1.2.3.4:'])
    refuses(() => parseHostPort(bad, '--socks', l), 'ERR_HOST_PORT', '--socks', bad, forms);
  refuses(
    () => parseHostPort('1.2.3.4:99999', '--http', l),
    'ERR_HOST_PORT',
    '--http',
    '1.2.3.4:99999',
    /port outside 0\.\.65535/,
  );
  refuses(
    () => parseHostPort('[nope]:1', '--dns', l),
    'ERR_HOST_PORT',
    '--dns',
    '[nope]:1',
    /bracketed host is not an IPv6 address/,
  );
});

test('parseHostPort: destinations (bare host, default port, port 0 refused)', () => {
  const d = { defaultPort: 53, minPort: 1 as const };
  assert.deepEqual(parseHostPort('1.1.1.1', 'x', d), { host: '1.1.1.1', port: 53 });
  assert.deepEqual(parseHostPort('dns.example:5353', 'x', d), { host: 'dns.example', port: 5353 });
  assert.deepEqual(parseHostPort('[2606:4700::1111]:53', 'x', d), { host: '2606:4700::1111', port: 53 });
  assert.deepEqual(parseHostPort('2606:4700::1111', 'x', d), { host: '2606:4700::1111', port: 53 });
  assert.deepEqual(parseHostPort('[::1]', 'x', d), { host: '::1', port: 53 });
  refuses(
    () => parseHostPort('h:0', '--dns-upstream', d),
    'ERR_HOST_PORT',
    '--dns-upstream',
    'h:0',
    /port outside 1\.\.65535/,
  );
  refuses(
    () => parseHostPort('h', 'upstream', { minPort: 1 }),
    'ERR_HOST_PORT',
    'upstream',
    'h',
    /a port is required/,
  );
  for (const bad of ['', ':53', 'a b', 'h:x', '[h]:1'])
    refuses(
      () => parseHostPort(bad, 'upstream', d),
      'ERR_HOST_PORT',
      'upstream',
      bad,
      /expected host:port|bracketed/,
    );
});

test('parsePort and parseIntInRange: digits only, inside the range', () => {
  assert.equal(parsePort('0', '--port'), 0);
  assert.equal(parsePort('65535', '--port'), 65535);
  assert.equal(parseIntInRange('50', '--first-data-wait', 0, 10_000), 50);
  for (const bad of ['', '-1', '65536', '1.5', '1e3', ' 80', 'http', '0x50'])
    refuses(
      () => parsePort(bad, '--port'),
      'ERR_PORT',
      '--port',
      bad,
      /^--port must be an integer in 0\.\.65535, got /,
    );
  refuses(() => parsePort('0', '--api-port', 1), 'ERR_PORT', '--api-port', '0', /in 1\.\.65535/);
  refuses(
    () => parseIntInRange('0', '--idle-timeout', 1, 86_400),
    'ERR_INTEGER',
    '--idle-timeout',
    '0',
    /in 1\.\.86400/,
  );
});

test('parseSeconds: positive, fractions allowed, at most a week unless told', () => {
  assert.equal(parseSeconds('300', '--idle-timeout'), 300);
  assert.equal(parseSeconds('0.5', '--idle-timeout'), 0.5);
  assert.equal(parseSeconds('604800', '--idle-timeout'), 604_800);
  for (const bad of ['0', '0.0', '604801', '-5', '1e3', '', 'ten', '.5'])
    refuses(
      () => parseSeconds(bad, '--idle-timeout'),
      'ERR_SECONDS',
      '--idle-timeout',
      bad,
      /^--idle-timeout must be a number of seconds in \(0, 604800\], got /,
    );
  refuses(() => parseSeconds('11', 'connectSeconds', 10), 'ERR_SECONDS', 'connectSeconds', '11', /\(0, 10\]/);
});

test('durations: s, m, h, d, w', () => {
  assert.equal(durationMs('30d'), 30 * 86_400_000);
  assert.equal(durationMs('90s'), 90_000);
  assert.equal(durationMs('2w'), 14 * 86_400_000);
  assert.equal(durationMs('12h'), 12 * 3_600_000);
  assert.equal(durationMs('5m'), 300_000);
  assert.equal(durationMs('30'), undefined);
  assert.equal(durationMs('d'), undefined);
  assert.equal(parseDuration('1h', 'since'), 3_600_000);
  for (const bad of ['30', '3x', '-1d', '1.5h', ''])
    refuses(() => parseDuration(bad, 'since'), 'ERR_DURATION', 'since', bad, /s, m, h, d or w/);
});

test('formatHostPort brackets IPv6 literals', () => {
  assert.equal(formatHostPort('1.2.3.4', 80), '1.2.3.4:80');
  assert.equal(formatHostPort('::1', 80), '[::1]:80');
});

test('listen and bindUdp resolve with the address and reject with the bind error', async () => {
  const a = createServer();
  const addr = await listen(a, { host: '127.0.0.1', port: 0 });
  assert.equal(addr.address, '127.0.0.1');
  assert.ok(addr.port > 0);
  const b = createServer();
  await assert.rejects(listen(b, { host: '127.0.0.1', port: addr.port }), (e: NodeJS.ErrnoException) => {
    assert.equal(e.code, 'EADDRINUSE');
    return true;
  });
  assert.equal(b.listenerCount('error'), 0);
  assert.equal(b.listenerCount('listening'), 0);
  await new Promise<void>((r) => a.close(() => r()));

  const u = createSocket('udp4');
  const ua = await bindUdp(u, 0, '127.0.0.1');
  assert.ok(ua.port > 0);
  const v = createSocket('udp4');
  await assert.rejects(
    bindUdp(v, ua.port, '127.0.0.1'),
    (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE',
  );
  u.close();
  v.close();
});

test('isHostName: IP literals and RFC 1123 names', () => {
  for (const ok of ['1.2.3.4', '::1', 'example.com', 'example.com.', 'a-b.c', 'localhost'])
    assert.ok(isHostName(ok), ok);
  for (const bad of [
    '',
    '-a.com',
    'a-.com',
    'a..b',
    'a_b.com',
    'exa mple.com',
    `${'a'.repeat(64)}.com`,
    'http://x',
  ])
    assert.ok(!isHostName(bad), bad);
});

test('bindErrorCode: only the failures about the chosen address', () => {
  for (const code of ['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL', 'ENOTFOUND'])
    assert.equal(bindErrorCode(Object.assign(new Error('x'), { code })), code);
  assert.equal(bindErrorCode(Object.assign(new Error('x'), { code: 'EMFILE' })), undefined);
  assert.equal(bindErrorCode(new TypeError('x')), undefined);
  assert.equal(bindErrorCode(undefined), undefined);
});

test('parseSize: a unit is required, decimal and binary, positive only', () => {
  assert.equal(parseSize('10GB', 'limit'), 10e9);
  assert.equal(parseSize('500MiB', 'limit'), 500 * 2 ** 20);
  assert.equal(parseSize('1.5TB', 'limit'), 1.5e12);
  assert.equal(parseSize('2048 b', 'limit'), 2048);
  assert.equal(parseSize('10G', 'limit'), 10e9); // one-letter units stay decimal, as before
  assert.equal(parseSize('500m', 'limit'), 500e6);
  assert.throws(() => parseSize('10', 'limit'), /limit must be a size with a unit .*got "10"/);
  assert.throws(() => parseSize('-5GB', 'limit'), /limit must be a positive size like 10GB, got "-5GB"/);
  assert.throws(() => parseSize('0GB', 'limit'), /positive/);
  assert.throws(() => parseSize('5XB', 'limit'), /unit B, kB/);
  assert.throws(() => parseSize('9999999TB', 'limit'), /at most 8 PB/);
});

test('parseIsoDate: strict ISO 8601 dates and date-times, impossible ones refused with the reason', () => {
  assert.equal(parseIsoDate('2026-12-31', 'e'), Date.UTC(2026, 11, 31));
  assert.equal(parseIsoDate('2028-02-29', 'e'), Date.UTC(2028, 1, 29));
  assert.equal(parseIsoDate('2026-12-31T18:30', 'e'), Date.UTC(2026, 11, 31, 18, 30));
  assert.equal(parseIsoDate('2026-12-31T18:30:15.5Z', 'e'), Date.UTC(2026, 11, 31, 18, 30, 15, 500));
  assert.equal(parseIsoDate('2026-12-31T18:30+02:00', 'e'), Date.UTC(2026, 11, 31, 16, 30));
  assert.throws(() => parseIsoDate('2027-02-29', 'e'), /e "2027-02-29": February 2027 has 28 days/);
  assert.throws(() => parseIsoDate('2027-04-31', 'e'), /April 2027 has 30 days/);
  assert.throws(() => parseIsoDate('2027-00-10', 'e'), /there is no month 0/);
  assert.throws(() => parseIsoDate('2027-01-01T24:00', 'e'), /there is no hour 24/);
  assert.throws(() => parseIsoDate('2027-01-01T10:00+19:00', 'e'), /time zone offset/);
  assert.throws(() => parseIsoDate('31/12/2026', 'e'), /expected an ISO 8601 date/);
  const now = Date.UTC(2026, 0, 1);
  assert.equal(parseMoment('+12h', 'e', now), now + 12 * 3_600_000);
  assert.throws(() => parseMoment('tomorrow', 'e', now), /e must be a date .* got "tomorrow"/);
});

test('parseRate: bits or bytes per second with a unit, at least 1 KiB/s; formatRate reads it back', () => {
  assert.equal(parseRate('10Mbit', 'speed'), 1_250_000);
  assert.equal(parseRate('10Mbps', 'speed'), 1_250_000);
  assert.equal(parseRate('10 Mbit/s', 'speed'), 1_250_000);
  assert.equal(parseRate('500kbit', 'speed'), 62_500);
  assert.equal(parseRate('2MB/s', 'speed'), 2_000_000);
  assert.equal(parseRate('1.5MiB/s', 'speed'), 1_572_864);
  // b is bits, B bytes, as people write them: 10Mb/s is 10 megabits, 10MBps 10 megabytes.
  assert.equal(parseRate('10Mb/s', 'speed'), 1_250_000);
  assert.equal(parseRate('10MBps', 'speed'), 10_000_000);
  assert.equal(parseRate('1TiB/s', 'speed'), 2 ** 40);
  assert.throws(() => parseRate('10Mib/s', 'speed'), /with a unit/);
  assert.throws(() => parseRate('10', 'speed'), /speed must be a rate with a unit.*got "10"/);
  assert.throws(() => parseRate('0Mbit', 'speed'), /positive rate/);
  assert.throws(() => parseRate('8kbit', 'speed'), /at least 1 KiB\/s/);
  assert.throws(() => parseRate('3 furlongs', 'speed'), /with a unit/);
  assert.equal(formatRate(1_250_000), '10 Mbit/s');
  assert.equal(formatRate(1_562_500), '12.5 Mbit/s');
  assert.equal(formatRate(62_500), '500 kbit/s');
  assert.equal(formatRate(125_000_000), '1 Gbit/s');
});
