import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../shared/clock.js';
import { DialError, dialDestination, isPrivateAddress } from './destination.js';

describe('isPrivateAddress', () => {
  it('refuses loopback, private, link-local, unspecified, multicast, mapped forms', () => {
    for (const ip of [
      '127.0.0.1',
      '127.8.9.10',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '0.0.0.0',
      '100.64.0.1',
      '224.0.0.1',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      'fc00::1',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:10.0.0.1',
      'not-an-ip',
    ]) {
      assert.equal(isPrivateAddress(ip), true, ip);
    }
  });
  it('allows public addresses', () => {
    for (const ip of [
      '1.1.1.1',
      '8.8.8.8',
      '172.32.0.1',
      '192.169.0.1',
      '2001:4860:4860::8888',
      '::ffff:8.8.8.8',
    ]) {
      assert.equal(isPrivateAddress(ip), false, ip);
    }
  });
});

describe('dialDestination', () => {
  it('refuses a name that resolves only to private addresses, before connecting', async () => {
    await assert.rejects(
      dialDestination(
        { type: 'domain', host: 'intranet.example', port: 80 },
        {
          allowPrivate: false,
          timeoutMs: 1000,
          clock: systemClock,
          lookup: async () => [{ address: '10.0.0.5', family: 4 }],
        },
      ),
      (e: unknown) => e instanceof DialError && e.status === 'ERR_FORBIDDEN',
    );
    await assert.rejects(
      dialDestination(
        { type: 'ipv4', host: '127.0.0.1', port: 80 },
        { allowPrivate: false, timeoutMs: 1000, clock: systemClock },
      ),
      (e: unknown) => e instanceof DialError && e.status === 'ERR_FORBIDDEN',
    );
  });

  it('reports resolution failure and refused connections by status, without the destination', async () => {
    await assert.rejects(
      dialDestination(
        { type: 'domain', host: 'nx.example', port: 80 },
        {
          allowPrivate: true,
          timeoutMs: 1000,
          clock: systemClock,
          lookup: async () => {
            throw new Error('ENOTFOUND');
          },
        },
      ),
      (e: unknown) =>
        e instanceof DialError && e.status === 'ERR_RESOLVE' && !e.message.includes('nx.example'),
    );
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    await assert.rejects(
      dialDestination(
        { type: 'ipv4', host: '127.0.0.1', port },
        { allowPrivate: true, timeoutMs: 1000, clock: systemClock },
      ),
      (e: unknown) => e instanceof DialError && e.status === 'ERR_CONNECT',
    );
  });

  it('falls through to the next resolved address', async () => {
    const s = net.createServer((c) => c.end());
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const port = (s.address() as AddressInfo).port;
    try {
      const sock = await dialDestination(
        { type: 'domain', host: 'two.example', port },
        {
          allowPrivate: true,
          timeoutMs: 2000,
          clock: systemClock,
          lookup: async () => [
            { address: '127.0.0.2', family: 4 },
            { address: '127.0.0.1', family: 4 },
          ],
        },
      );
      sock.destroy();
    } finally {
      await new Promise<void>((r) => s.close(() => r()));
    }
  });
});
