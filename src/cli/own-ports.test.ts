import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkOwnPortsDistinct, twoSettings } from './own-ports.js';

test('checkOwnPortsDistinct: one port for two listeners is named, unless their addresses differ', () => {
  assert.throws(
    () =>
      checkOwnPortsDistinct([
        ['--port', 8388],
        ['--web-port', 8388],
      ]),
    /^UsageError: --port and --web-port both name port 8388: give each listener its own port$/,
  );
  assert.throws(
    () =>
      checkOwnPortsDistinct([
        ['--port', 8388, '0.0.0.0'],
        ['--api-port', 9000],
        ['--metrics-port', 9000, '127.0.0.1'],
      ]),
    /--api-port and --metrics-port both name port 9000/,
  );
  // 0 picks a free port; unset ports are not compared; two distinct addresses can share a port.
  checkOwnPortsDistinct([
    ['--port', 0],
    ['--web-port', 0],
    ['--api-port', undefined],
  ]);
  checkOwnPortsDistinct([
    ['--port', 443, '127.0.0.1'],
    ['--web-port', 443, '127.0.0.2'],
  ]);
  assert.throws(
    () =>
      checkOwnPortsDistinct([
        ['--port', 443, '127.0.0.1'],
        ['--web-port', 443, '::'],
      ]),
    /both name port 443/,
  );
  // IPv4's wildcard and an IPv6 address are two sockets the kernel allows; '::' is dual-stack.
  checkOwnPortsDistinct([
    ['--port', 443, '0.0.0.0'],
    ['--web-port', 443, '::1'],
  ]);
  checkOwnPortsDistinct([
    ['--port', 443, '[2001:db8::1]'],
    ['--web-port', 443, '0.0.0.0'],
  ]);
  for (const [x, y] of [
    ['0.0.0.0', '::ffff:127.0.0.1'],
    ['[::]', '127.0.0.1'],
    ['::1', '[::1]'],
  ] as const)
    assert.throws(
      () =>
        checkOwnPortsDistinct([
          ['--port', 443, x],
          ['--web-port', 443, y],
        ]),
      /both name port 443/,
      `${x} ${y}`,
    );
});

test('twoSettings: two fields of one config file name the file once', () => {
  assert.equal(twoSettings('/etc/s.json: port', '/etc/s.json: web.port'), '/etc/s.json: port and web.port');
  assert.equal(twoSettings('a: b.json: "socks"', 'a: b.json: "http"'), 'a: b.json: "socks" and "http"');
  assert.equal(twoSettings('--port', '--web-port'), '--port and --web-port');
  assert.equal(twoSettings('/etc/s.json: port', '--web-port'), '/etc/s.json: port and --web-port');
  assert.equal(twoSettings('x: port', 'y: port'), 'x: port and y: port');
  assert.equal(twoSettings('x: port', 'x:'), 'x: port and x:');
});
