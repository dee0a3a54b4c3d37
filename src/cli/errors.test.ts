import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommanderError } from 'commander';
import { ProtocolError } from '../protocol/errors.js';
import { ParseError } from '../shared/parse.js';
import { ClientConfigError, ConfigError } from '../config/errors.js';
import { StoreError } from '../store/types.js';
import { RuleSyntaxError } from '../client/routing/rules.js';
import { EXIT, reportError, UsageError } from './errors.js';

test('usage errors and unusable user data: exit 2, one line "ladder: …"', () => {
  const userErrors: Error[] = [
    new UsageError('--key is required'),
    new ParseError('ERR_PORT', '--port must be an integer in 0..65535, got "x"'),
    new ConfigError('s.json: keys[0].method: unknown method', 'keys[0].method'),
    new ClientConfigError('c.json: unknown field "sock"', ''),
    new RuleSyntaxError('rules.txt', 3, 'unknown route "x"'),
    new ProtocolError('ERR_URL', 'not an ss:// URL'),
    new StoreError('STORE_OPEN_FAILED', 'store: cannot open'),
    new StoreError('KEY_EXISTS', 'store: an access key with id "1" already exists'),
  ];
  for (const err of userErrors) {
    const r = reportError(err);
    assert.equal(r.exitCode, EXIT.USAGE, err.name);
    assert.equal(r.exitCode, 2);
    assert.equal(r.stderr, `ladder: ${err.message}\n`);
    assert.equal(r.stderr.split('\n').length, 2, 'exactly one line');
  }
});

test('a bug: exit 1 with the bug message and the stack, not a usage error', () => {
  const bug = new TypeError("Cannot read properties of undefined (reading 'port')");
  const r = reportError(bug);
  assert.equal(r.exitCode, EXIT.BUG);
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /^ladder: unexpected error: this is a bug in ladder, please report it/);
  assert.ok(r.stderr.includes(bug.stack!), 'the stack is printed');
  // Store failures that are not about the user's data are bugs too, as are non-Error throws.
  assert.equal(reportError(new StoreError('STORE_CLOSED', 'store: already closed')).exitCode, 1);
  const odd = reportError('a string');
  assert.equal(odd.exitCode, 1);
  assert.match(odd.stderr, /a string/);
});

test('commander help and version keep their exit code and print nothing more', () => {
  const r = reportError(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'));
  assert.deepEqual(r, { exitCode: 0, stderr: '' });
  // `ladder keys` without a subcommand: commander printed the help to stderr; exit 2, no "(outputHelp)".
  assert.deepEqual(reportError(new CommanderError(1, 'commander.help', '(outputHelp)')), {
    exitCode: 2,
    stderr: '',
  });
});

test('every CLI error carries a stable code', () => {
  assert.equal(new UsageError('x').code, 'ERR_USAGE');
  assert.equal(new UsageError('x', 'ERR_INPUT').code, 'ERR_INPUT');
  assert.equal(new ConfigError('x', '').code, 'ERR_CONFIG_JSON');
  assert.equal(new ConfigError('x', 'port').code, 'ERR_CONFIG_FIELD');
  assert.equal(new ClientConfigError('x', 'route').code, 'ERR_CONFIG_FIELD');
});
