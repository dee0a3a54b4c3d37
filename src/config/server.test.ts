import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseServerConfig, parseServerConfigText } from './server.js';

const SECRET = 'hunter2-very-secret';
const key = (over: Record<string, unknown> = {}) => ({
  id: 'alice',
  method: 'chacha20-ietf-poly1305',
  password: SECRET,
  ...over,
});

function errorOf(input: unknown): ConfigError {
  try {
    parseServerConfig(input, 'config.json');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(!err.message.includes('\n'), 'one line');
    assert.ok(!err.message.includes(SECRET), `password echoed: ${err.message}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

describe('server config', () => {
  it('accepts a minimal config and fills defaults', () => {
    const c = parseServerConfig({ keys: [key()] });
    assert.equal(c.port, 8388);
    assert.equal(c.host, undefined);
    assert.equal(c.idleMs, 300_000);
    assert.equal(c.connectMs, 10_000);
    assert.equal(c.allowPrivateDestinations, false);
    assert.deepEqual(c.keys, [{ id: 'alice', method: 'chacha20-ietf-poly1305', secret: SECRET }]);
  });

  it("takes a key's deviceLimit and speedLimit (a rate with a unit), refuses bad ones in one line", () => {
    const c = parseServerConfig({ keys: [key({ deviceLimit: 2, speedLimit: '10Mbit' })] });
    assert.deepEqual(c.keys, [
      {
        id: 'alice',
        method: 'chacha20-ietf-poly1305',
        secret: SECRET,
        deviceLimit: 2,
        speedLimit: 1_250_000,
      },
    ]);
    assert.match(
      errorOf({ keys: [key({ deviceLimit: 0 })] }).message,
      /keys\[0\]\.deviceLimit: must be at least 1/,
    );
    assert.match(
      errorOf({ keys: [key({ deviceLimit: 1.5 })] }).message,
      /deviceLimit: must be a whole number/,
    );
    assert.match(
      errorOf({ keys: [key({ speedLimit: '10' })] }).message,
      /keys\[0\]\.speedLimit: must be a rate with a unit/,
    );
    assert.match(
      errorOf({ keys: [key({ speedLimit: 10 })] }).message,
      /speedLimit: must be a rate with a unit, like/,
    );
  });

  it('accepts every field, short timeouts for tests, a mix of methods', () => {
    const c = parseServerConfig({
      port: 0,
      host: '127.0.0.1',
      keys: [key(), key({ id: 'bob', method: 'aes-128-gcm' }), key({ id: 'carol', method: 'aes-256-gcm' })],
      timeouts: { idleSeconds: 2, connectSeconds: 0.5 },
      allowPrivateDestinations: true,
      replayCapacity: 100,
    });
    assert.equal(c.idleMs, 2000);
    assert.equal(c.connectMs, 500);
    assert.equal(c.keys.length, 3);
    assert.equal(c.replayCapacity, 100);
  });

  it('refuses stream ciphers naming the field', () => {
    const e = errorOf({ keys: [key(), key({ id: 'bob', method: 'rc4-md5' })] });
    assert.match(
      e.message,
      /^config\.json: keys\[1\]\.method: method "rc4-md5" is a stream cipher .*refused/,
    );
    assert.equal(e.path, 'keys[1].method');
  });

  it('refuses unknown methods', () => {
    assert.match(
      errorOf({ keys: [key({ method: 'aes-512-gcm' })] }).message,
      /keys\[0\]\.method: unknown method "aes-512-gcm"/,
    );
  });

  it('refuses duplicate ids', () => {
    assert.match(
      errorOf({ keys: [key(), key({ id: 'bob', password: 'pw-bob' }), key({ password: 'pw-3' })] }).message,
      /^config\.json: keys\[2\]\.id: duplicate id "alice" \(also keys\[0\]\.id\)$/,
    );
  });

  it('refuses two keys with the same method and password, without echoing the password', () => {
    const msg = errorOf({ keys: [key(), key({ id: 'bob' })] }).message;
    assert.match(
      msg,
      /^config\.json: keys\[1\]\.password: the same method and password as keys\[0\] \("alice"\): the server could not tell the two apart$/,
    );
    assert.ok(!msg.includes(key().password), 'no password in the message');
    // Control: another method with the same password is a different key.
    assert.doesNotThrow(() =>
      parseServerConfig({ keys: [key(), key({ id: 'bob', method: 'aes-128-gcm' })] }, 'config.json'),
    );
  });

  it('refuses unknown fields at the top level and inside keys', () => {
    assert.match(
      errorOf({ keys: [key()], prot: 1 }).message,
      /^config\.json: unknown field "prot" \(did you mean "port"\?\)$/,
    );
    assert.match(errorOf({ keys: [key()], zzzz: 1 }).message, /^config\.json: unknown field "zzzz"$/);
    // A misspelt field is named first, not the "is required" it causes (nor "and 1 more problem").
    assert.match(
      errorOf({ keys: [{ id: 'a', method: 'aes-128-gcm', pasword: SECRET }] }).message,
      /^config\.json: keys\[0\]: unknown field "pasword" \(did you mean "password"\?\)$/,
    );
    // Control: a missing field that is not the misspelt one still counts.
    assert.match(
      errorOf({ keys: [{ id: 'a', pasword: SECRET }] }).message,
      /unknown field "pasword" \(did you mean "password"\?\) \(and 1 more problem\)$/,
    );
    assert.match(
      errorOf({ keys: [key()], timeouts: { idleSecond: 5 } }).message,
      /^config\.json: timeouts: unknown field "idleSecond" \(did you mean "idleSeconds"\?\)$/,
    );
  });

  it('names the field for wrong types and ranges', () => {
    assert.match(
      errorOf({ keys: [key()], port: 70000 }).message,
      /^config\.json: port: must be in 0\.\.65535$/,
    );
    assert.match(errorOf({ keys: [key()], port: '8388' }).message, /^config\.json: port: must be a number/);
    assert.match(errorOf({ keys: [key({ password: 42 })] }).message, /keys\[0\]\.password: must be a string/);
    assert.match(
      errorOf({ keys: [key({ password: '' })] }).message,
      /keys\[0\]\.password: must not be empty/,
    );
    assert.match(errorOf({ keys: [] }).message, /keys: must list at least one key/);
    assert.match(errorOf({}).message, /keys: is required/);
    assert.match(
      errorOf({ keys: [key()], timeouts: { idleSeconds: 0 } }).message,
      /timeouts\.idleSeconds: must be greater than 0/,
    );
    assert.match(
      errorOf({ keys: [key()], allowPrivateDestinations: 'yes' }).message,
      /allowPrivateDestinations: must be true or false/,
    );
    assert.match(errorOf([]).message, /must be a JSON object/);
  });

  it('JSON syntax errors give a location, never the text', () => {
    try {
      parseServerConfigText(
        `{"keys": [{"id": "a", "method": "aes-128-gcm", "password": "${SECRET}" "x": 1}]}`,
        'c.json',
      );
      assert.fail('expected error');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^c\.json: line 1, column \d+: expected ',' or '}' after property value$/);
    }
    assert.throws(() => parseServerConfigText(' \n', 'c.json'), /^ConfigError: c\.json: the file is empty$/);
    // A '}' where an array's first value was due: its own place, not the end of the file.
    assert.throws(
      () => parseServerConfigText('{ "port": 8388, "keys": [ }\n', 'c.json'),
      /^ConfigError: c\.json: line 1, column 27: unexpected token '\}'$/,
    );
    assert.throws(
      () => parseServerConfigText(`{"password": ${SECRET}}`, 'c.json'),
      (e: Error) => !e.message.includes(SECRET),
    );
  });

  it('web: the web front settings, with errors naming the field', () => {
    const c = parseServerConfig({
      keys: [key()],
      web: { port: 8443, path: '/s3cret', tlsCert: 'c.pem', tlsKey: 'k.pem', trustProxy: '10.0.0.0/8' },
    });
    assert.deepEqual(c.web, {
      port: 8443,
      path: '/s3cret',
      tlsCert: 'c.pem',
      tlsKey: 'k.pem',
      trustProxy: ['10.0.0.0/8'],
    });
    assert.equal(parseServerConfig({ keys: [key()] }).web, undefined);
    assert.deepEqual(
      parseServerConfig({ keys: [key()], web: { port: 0, acme: 'a.example', dataDir: 'd' } }).web?.acme,
      ['a.example'],
    );
    assert.match(errorOf({ keys: [key()], web: {} }).message, /^config\.json: web\.port: is required$/);
    assert.match(
      errorOf({ keys: [key()], web: { port: 70000 } }).message,
      /web\.port: must be in 0\.\.65535/,
    );
    assert.match(
      errorOf({ keys: [key()], web: { port: 1, path: 'x' } }).message,
      /web\.path: must start with "\/"/,
    );
    assert.match(
      errorOf({ keys: [key()], web: { port: 1, tlsCert: 'c' } }).message,
      /web\.tlsKey: tlsCert and tlsKey go together/,
    );
    assert.match(
      errorOf({ keys: [key()], web: { port: 1, tlsCert: 'c', tlsKey: 'k', acme: 'a.example', dataDir: 'd' } })
        .message,
      /web\.acme: acme and tlsCert\/tlsKey are exclusive/,
    );
    assert.match(
      errorOf({ keys: [key()], web: { port: 1, acme: 'a.example' } }).message,
      /web\.dataDir: is required with acme/,
    );
    assert.match(
      errorOf({ keys: [key()], web: { port: 1, acmeEmail: 'a@b' } }).message,
      /web\.acmeEmail: only means something with acme/,
    );
    assert.match(errorOf({ keys: [key()], web: { port: 1, trustProxy: [] } }).message, /web\.trustProxy: /);
    assert.match(errorOf({ keys: [key()], web: { port: 1, tls: true } }).message, /web: unknown field "tls"/);
  });
});
