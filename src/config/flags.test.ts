import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParseError } from '../shared/parse.js';
import { clientFlagsSchema, managedFlagsSchema, parseFlags, serverFlagsSchema } from './flags.js';

function refused(fn: () => unknown, message: string, code: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ParseError, String(e));
    assert.equal(e.message, message);
    assert.equal(e.code, code);
    return true;
  });
}

test('client flags: numbers parsed, other flags left to the command, a missing default refused', () => {
  const f = parseFlags(clientFlagsSchema, { firstDataWait: '50', idleTimeout: '300', socks: '1080' });
  assert.deepEqual(f, { firstDataWait: 50, idleTimeout: 300 });
  refused(
    () => parseFlags(clientFlagsSchema, { idleTimeout: '300' }),
    '--first-data-wait is required',
    'ERR_INTEGER',
  );
  assert.equal(
    parseFlags(clientFlagsSchema, { firstDataWait: '0', idleTimeout: '1', residual: '0' }).residual,
    0,
  );
  refused(
    () => parseFlags(clientFlagsSchema, { firstDataWait: '10001', idleTimeout: '300' }),
    '--first-data-wait must be an integer in 0..10000, got "10001"',
    'ERR_INTEGER',
  );
  refused(
    () => parseFlags(clientFlagsSchema, { firstDataWait: '50', idleTimeout: '0' }),
    '--idle-timeout must be an integer in 1..86400, got "0"',
    'ERR_INTEGER',
  );
});

test('server and managed flags: ports, seconds, the dynamic listener', () => {
  assert.deepEqual(parseFlags(serverFlagsSchema, { port: '0', idleTimeout: '1.5' }), {
    port: 0,
    idleTimeout: 1.5,
  });
  assert.deepEqual(parseFlags(serverFlagsSchema, {}), {});
  refused(
    () => parseFlags(serverFlagsSchema, { port: '99999' }),
    '--port must be an integer in 0..65535, got "99999"',
    'ERR_PORT',
  );
  refused(
    () => parseFlags(serverFlagsSchema, { idleTimeout: '0' }),
    '--idle-timeout must be a number of seconds in (0, 604800], got "0"',
    'ERR_SECONDS',
  );
  const m = parseFlags(managedFlagsSchema, { apiPort: '8443', dynamicListen: '8080' });
  assert.deepEqual(m.dynamicListen, { host: '0.0.0.0', port: 8080 });
  assert.equal(m.apiPort, 8443);
  refused(
    () => parseFlags(managedFlagsSchema, { metricsPort: 'x' }),
    '--metrics-port must be an integer in 0..65535, got "x"',
    'ERR_PORT',
  );
  refused(
    () => parseFlags(managedFlagsSchema, { dynamicListen: 'a:b' }),
    '--dynamic-listen "a:b": expected host:port, [ipv6]:port or a port number',
    'ERR_HOST_PORT',
  );
});
