import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseClientConfig } from '../config/client.js';
import { ClientConfigError, parseHostPort, parseRouteMode, parseRulesText } from './config.js';
import { RuleSyntaxError } from './routing/rules.js';

test('client config: keys, SIP008 servers and options', () => {
  const c = parseClientConfig(
    JSON.stringify({
      keys: ['ss://a', 'ss://b'],
      servers: [
        {
          server: '198.51.100.7',
          server_port: 8388,
          method: 'aes-256-gcm',
          password: 'pw',
          remarks: 'tokyo',
        },
      ],
      socks: false,
      http: '127.0.0.1:8118',
      route: 'AUTO',
      rules: 'r.txt',
      dns: '127.0.0.1:5353',
      dnsUpstream: '9.9.9.9',
      dnsMode: 'stub',
      shape: false,
      residualSeconds: 120,
      udp: true,
      udpOverTcp: true,
    }),
    'c.json',
  );
  assert.deepEqual(c.keys, ['ss://a', 'ss://b']);
  assert.deepEqual(c.servers, [
    { host: '198.51.100.7', port: 8388, method: 'aes-256-gcm', password: 'pw', tag: 'tokyo' },
  ]);
  assert.equal(c.socks, false);
  assert.equal(c.route, 'auto');
  assert.equal(c.dnsMode, 'stub');
  assert.equal(c.shape, false);
  assert.equal(c.residualSeconds, 120);
  assert.equal(c.udpOverTcp, true);
});

test("client config: a SIP008 entry with v2ray-plugin (as Ladder's subscription gives it) is kept with its options", () => {
  const opts = 'mode=websocket;path=/p\\;q;host=vpn.example;tls';
  const c = parseClientConfig(
    JSON.stringify({
      version: 1,
      servers: [
        {
          server: 'vpn.example',
          server_port: 443,
          method: 'aes-256-gcm',
          password: 'pw',
          plugin: 'v2ray-plugin',
          plugin_opts: opts,
        },
        { server: 'h', server_port: 8388, method: 'aes-256-gcm', password: 'pw', plugin: '' },
      ],
    }),
    'c.json',
  );
  assert.deepEqual(c.servers, [
    {
      host: 'vpn.example',
      port: 443,
      method: 'aes-256-gcm',
      password: 'pw',
      plugin: 'v2ray-plugin',
      pluginOptions: opts,
    },
    { host: 'h', port: 8388, method: 'aes-256-gcm', password: 'pw' },
  ]);
});

test('client config: "auth" as --auth takes it, or as an object', () => {
  assert.deepEqual(parseClientConfig('{"auth": "alice:pw:with:colons"}').auth, {
    username: 'alice',
    password: 'pw:with:colons',
  });
  assert.deepEqual(parseClientConfig('{"auth": {"username": "bob", "password": "pw"}}').auth, {
    username: 'bob',
    password: 'pw',
  });
  assert.equal(parseClientConfig('{}').auth, undefined);
});

test('client config errors name the file and field, never the password', () => {
  const bad: Array<[unknown, RegExp]> = [
    [[], /expected a JSON object/],
    [{ sock: 1 }, /unknown field "sock"/],
    [{ keys: 'ss://x' }, /"keys" must be an array/],
    [
      { servers: [{ server: 'h', server_port: 0, method: 'm', password: 'secretpw' }] },
      /servers\[0\]\.server_port/,
    ],
    [{ servers: [{ server: 'h', server_port: 1, method: 'm', password: '' }] }, /servers\[0\]\.password/],
    [
      { servers: [{ server: 'h', server_port: 1, method: 'm', password: 'secretpw', plugin: 'x' }] },
      /^c\.json: servers\[0\]\.plugin: plugin "x" is not supported \(only v2ray-plugin and shadow-tls\)$/,
    ],
    [
      {
        servers: [
          {
            server: 'h',
            server_port: 1,
            method: 'aes-256-gcm',
            password: 'secretpw',
            plugin: 'v2ray-plugin',
            plugin_opts: 'mode=quic',
          },
        ],
      },
      /^c\.json: servers\[0\]\.plugin_opts: v2ray-plugin mode "quic" is not supported/,
    ],
    [
      {
        servers: [
          {
            server: 'h',
            server_port: 1,
            method: 'aes-256-gcm',
            password: 'secretpw',
            plugin: 'shadow-tls',
            plugin_opts: 'host=site.example;password=stls-secret;version=2',
          },
        ],
      },
      /^c\.json: servers\[0\]\.plugin_opts: shadow-tls version=2 is not supported \(only version=3\)$/,
    ],
    [
      { servers: [{ server: 'h', server_port: 1, method: 'rc4-md5', password: 'secretpw' }] },
      /^c\.json: servers\[0\]\.method: method "rc4-md5" is a stream cipher/,
    ],
    [
      {
        servers: [
          { server: 'h', server_port: 1, method: '2022-blake3-aes-256-gcm', password: 'c2VjcmV0cHc=' },
        ],
      },
      /^c\.json: servers\[0\]\.password: key decodes to 8 bytes but 2022-blake3-aes-256-gcm needs exactly 32/,
    ],
    [{ route: 'sideways' }, /"route" must be auto, proxy or direct/],
    [{ dnsMode: 'doh' }, /"dnsMode"/],
    [{ shape: 'yes' }, /"shape" must be true or false/],
    [{ udpOverTcp: 2 }, /"udpOverTcp" must be true or false/],
    [{ residualSeconds: -1 }, /"residualSeconds"/],
    [{ auth: 'secretpw' }, /^c\.json: "auth" must be "user:password" or \{"username": …, "password": …\}$/],
    [{ auth: ':secretpw' }, /"auth" must be/],
    [{ auth: { username: 'u', password: '' } }, /"auth" must be/],
    [{ auth: { username: 'u', password: 'secretpw', realm: 'x' } }, /"auth" must be/],
    [{ auth: 42 }, /"auth" must be/],
  ];
  for (const [v, re] of bad) {
    assert.throws(
      () => parseClientConfig(JSON.stringify(v), 'c.json'),
      (e: Error) => {
        assert.ok(e instanceof ClientConfigError);
        assert.match(e.message, /^c\.json: /);
        assert.match(e.message, re);
        assert.ok(!e.message.includes('secretpw'));
        return true;
      },
    );
  }
  assert.throws(
    () => parseClientConfig('{', 'c.json'),
    /c\.json: line 1, column 2: expected property name or '}'$/,
  );
});

test("a SIP008 servers entry with the shadow-tls plugin (its options as a key's plugin= gives them)", () => {
  const c = parseClientConfig(
    JSON.stringify({
      servers: [
        {
          server: '203.0.113.5',
          server_port: 443,
          method: 'aes-256-gcm',
          password: 'secretpw',
          plugin: 'shadow-tls',
          plugin_opts: 'host=site.example;password=stls-secret;version=3',
        },
      ],
    }),
    'c.json',
  );
  assert.deepEqual(c.servers?.[0], {
    host: '203.0.113.5',
    port: 443,
    method: 'aes-256-gcm',
    password: 'secretpw',
    plugin: 'shadow-tls',
    pluginOptions: 'host=site.example;password=stls-secret;version=3',
  });
});

test('route modes, host:port and rule-file format detection', () => {
  assert.equal(parseRouteMode(' Direct '), 'direct');
  assert.throws(() => parseRouteMode('x'), /--route must be auto, proxy or direct/);
  assert.deepEqual(parseHostPort('1.1.1.1', '--dns-upstream', 53), { host: '1.1.1.1', port: 53 });
  assert.deepEqual(parseHostPort('dns.example:5353', 'x'), { host: 'dns.example', port: 5353 });
  assert.deepEqual(parseHostPort('[2606:4700::1111]:53', 'x'), { host: '2606:4700::1111', port: 53 });
  assert.deepEqual(parseHostPort('2606:4700::1111', 'x', 53), { host: '2606:4700::1111', port: 53 });
  assert.throws(() => parseHostPort('h:0', 'x'), /port outside/);
  assert.throws(() => parseHostPort('h', 'x'), /a port is required/);
  const acl = parseRulesText('[bypass_all]\n[proxy_list]\n||blocked.example\n', 'list.txt');
  assert.equal(acl.match('www.blocked.example'), 'proxy');
  assert.equal(acl.match('open.example'), 'direct');
  const list = parseRulesText('domain-suffix,blocked.example,fragment\n', 'rules.txt');
  assert.equal(list.match('a.blocked.example'), 'fragment');
  assert.throws(() => parseRulesText('nonsense\n', 'rules.txt'), RuleSyntaxError);
});
