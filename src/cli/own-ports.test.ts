import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkOwnPortsDistinct } from './own-ports.js';

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
});
