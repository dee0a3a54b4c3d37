import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from './errors.js';
import { subscriptionEndpointOf } from './web-endpoint.js';
import {
  parsePublicWebUrl,
  planWeb,
  webEndpointOf,
  webStatusLine,
  type PublicWebUrl,
  type RunningWeb,
} from './web.js';

test('--web-public-url: scheme decides TLS, default ports, IPv6 without brackets', () => {
  assert.deepEqual(parsePublicWebUrl('wss://cdn.example.net'), {
    host: 'cdn.example.net',
    port: 443,
    tls: true,
  });
  assert.deepEqual(parsePublicWebUrl('https://cdn.example.net:8443/'), {
    host: 'cdn.example.net',
    port: 8443,
    tls: true,
  });
  assert.deepEqual(parsePublicWebUrl('ws://edge.example:8080'), {
    host: 'edge.example',
    port: 8080,
    tls: false,
  });
  assert.deepEqual(parsePublicWebUrl('http://[2001:db8::1]'), { host: '2001:db8::1', port: 80, tls: false });
});

test('--web-public-url: anything else is one line naming the flag', () => {
  for (const [bad, why] of [
    ['cdn.example.net', /expected a URL/],
    ['ftp://cdn.example.net', /expected ws:\/\/, wss:\/\/, http:\/\/ or https:\/\//],
    ['wss://cdn.example.net/SECRET', /no path, query or fragment/],
    ['wss://cdn.example.net/?x=1', /no path, query or fragment/],
    ['wss://cdn.example.net#x', /no path, query or fragment/],
    ['wss://user:pw@cdn.example.net', /no user name or password/],
    ['wss://cdn.example.net:99999', /expected a URL/],
  ] as const) {
    assert.throws(
      () => parsePublicWebUrl(bad),
      (err: unknown) =>
        err instanceof UsageError &&
        err.message.startsWith('--web-public-url: ') &&
        why.test(err.message) &&
        !err.message.includes('\n'),
      bad,
    );
  }
  assert.throws(
    () => parsePublicWebUrl('wss://user:s3cret@cdn.example.net'),
    (err: unknown) => err instanceof Error && !err.message.includes('s3cret'),
    'credentials are not echoed',
  );
});

test('keys and subscriptions advertise the public URL, the front itself otherwise', () => {
  const front = (publicUrl?: PublicWebUrl): RunningWeb =>
    ({
      service: { front: { port: 8080, tls: false } },
      settings: { port: 8080, secretPath: '/S3cret' },
      publicUrl,
    }) as unknown as RunningWeb;
  const cdn = parsePublicWebUrl('wss://cdn.example.net');
  assert.deepEqual(webEndpointOf(front(cdn), 'origin.example'), {
    host: 'cdn.example.net',
    port: 443,
    path: '/S3cret',
    tls: true,
    mux: true,
  });
  assert.deepEqual(webEndpointOf(front(), 'origin.example'), {
    host: 'origin.example',
    port: 8080,
    path: '/S3cret',
    tls: false,
    mux: true,
  });
  const sub = subscriptionEndpointOf(front(cdn), true, undefined);
  assert.deepEqual([sub.host, sub.port, sub.tls, sub.path], ['cdn.example.net', 443, true, '/S3cret']);
  const plain = subscriptionEndpointOf(front(), true, undefined);
  assert.deepEqual([plain.host, plain.port, plain.tls], [undefined, 8080, false]);
});

test('the banner line warns about a short web path, not about a generated or long one', () => {
  const front = (secretPath: string): RunningWeb =>
    ({
      service: { front: { port: 8080, tls: false } },
      settings: { port: 8080, secretPath },
    }) as unknown as RunningWeb;
  assert.match(webStatusLine(front('/ws')), /WARNING: the web path has 2 characters, easy to guess/);
  assert.doesNotMatch(webStatusLine(front('/Q7xkRbW2pLm9tV')), /WARNING/);
  assert.doesNotMatch(webStatusLine(front('/QRcfFqPwLFW3FVT6lRwUIg')), /WARNING/);
});

test('--advertise / web.advertise: web marks the plan and the saved endpoint; anything else is one line', async () => {
  const file = (advertise: string) => ({ web: { port: 8080, advertise }, source: 'server.json' });
  assert.equal((await planWeb({ webPort: '8080', advertise: 'web' }, undefined, undefined))?.webOnly, true);
  assert.equal((await planWeb({}, file('web'), undefined))?.webOnly, true);
  assert.equal(
    (await planWeb({ advertise: 'all' }, file('web'), undefined))?.webOnly,
    undefined,
    'the flag wins',
  );
  await assert.rejects(planWeb({ webPort: '8080', advertise: 'cdn' }, undefined, undefined), {
    message: '--advertise: expected all or web, got "cdn"',
  });
  await assert.rejects(planWeb({}, file('cdn'), undefined), {
    message: 'server.json: web.advertise: expected all or web, got "cdn"',
  });
  await assert.rejects(planWeb({ advertise: 'web' }, undefined, undefined), {
    message: '--advertise needs --web-port (it configures the web front)',
  });
  const front = {
    service: { front: { port: 8080, tls: false } },
    settings: { port: 8080, secretPath: '/S3cret' },
    webOnly: true,
  } as unknown as RunningWeb;
  assert.equal(webEndpointOf(front, 'origin.example').only, true);
  assert.equal(subscriptionEndpointOf(front, true, undefined).only, true);
});
