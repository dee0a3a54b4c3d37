/**
 * The client's last guard on a key's error messages (src/client/key.ts `scrubKeySecrets`): any
 * piece of the key's password that a message repeats is replaced. A parser's message is a
 * ProtocolError, whose control characters are escaped (`\x01`) before the scrub sees it: a
 * password holding one was not found in it, and went out whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scrubKeySecrets } from '../../src/client/key.js';
import { ProtocolError } from '../../src/protocol/errors.js';

const PASSWORD = 'hunter\x01two-and-more';

/** A parser message that repeats `piece` (as a careless parser would), escaped as ProtocolError does. */
const parserMessage = (piece: string): string =>
  new ProtocolError('ERR_URL', `bad thing near "${piece}" here`).message;

const KEYS = [
  `ss://aes-256-gcm:${PASSWORD}@198.51.100.1:8388`,
  `ss://aes-256-gcm:${encodeURIComponent(PASSWORD)}@198.51.100.1:8388`,
  `ss://${Buffer.from(`aes-256-gcm:${PASSWORD}`).toString('base64url')}@198.51.100.1:8388`,
  `ss://${Buffer.from(`aes-256-gcm:${PASSWORD}@198.51.100.1:8388`).toString('base64')}`,
];

for (const key of KEYS) {
  test(`a password with a control character is scrubbed from an escaped message: ${JSON.stringify(key)}`, () => {
    const msg = parserMessage(PASSWORD);
    assert.match(msg, /hunter\\x01two/, 'the message holds the escaped password (the case under test)');
    const out = scrubKeySecrets(msg, key);
    assert.doesNotMatch(out, /hunter|two-and-more/, out);
    assert.equal(out, 'bad thing near "[redacted]" here');
  });
}

test('the raw form is still scrubbed (a message not yet escaped)', () => {
  const out = scrubKeySecrets(`near "${PASSWORD}"`, KEYS[0]!);
  assert.equal(out, 'near "[redacted]"');
  // and a plain password, as before
  assert.equal(scrubKeySecrets('x plain-secret y', 'ss://aes-256-gcm:plain-secret@h:1'), 'x [redacted] y');
});
