// `ladder server --web-public-url … --advertise web` (unmanaged): the banner's access URLs name the
// CDN only, never the raw port at this host, and nothing warns; without --advertise web (the
// control) the raw URL is printed and one warning says the origin is still advertised. A bad value
// is one line, exit 2.
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseSsUrl } from '../../src/protocol/sip002/index.js';
import { run, unmanagedWeb, waitForStdout, type Run } from '../helpers/cli-run.js';
import { runLadder } from '../helpers/ladder-run.js';

const CDN = ['--web-public-url', 'wss://cdn.example.net'];
const WARNING = /--web-public-url is set but keys and subscriptions still name the raw port/;

/** The banner, the ss:// URLs in it, and stderr so far; the server stopped. */
async function banner(r: Run): Promise<{ urls: string[]; stderr: string; stdout: string }> {
  try {
    await waitForStdout(r, /Ctrl-C to stop/);
    const urls = r.stdout().match(/(?<!w)ss:\/\/[^\s']+/g) ?? []; // not wss://, the banner's CDN
    r.child.kill('SIGTERM');
    assert.equal(await r.exit, 0, r.stderr());
    return { urls, stderr: r.stderr(), stdout: r.stdout() };
  } finally {
    r.child.kill('SIGKILL');
  }
}

describe('ladder server --advertise (CLI)', () => {
  it('web: every printed URL is the CDN front; all (control): the raw URL and a warning', async () => {
    const password = randomBytes(18).toString('base64url');
    const only = await banner(run(unmanagedWeb(password, ...CDN, '--advertise', 'web')));
    assert.ok(only.urls.length > 0);
    for (const u of only.urls) {
      const k = parseSsUrl(u);
      assert.equal(k.host, 'cdn.example.net', u);
      assert.equal(k.plugin, 'v2ray-plugin', u);
    }
    assert.doesNotMatch(only.stderr, WARNING);

    const all = await banner(run(unmanagedWeb(password, ...CDN)));
    assert.ok(
      all.urls.some((u) => parseSsUrl(u).host === '127.0.0.1' && parseSsUrl(u).plugin === undefined),
      'the raw URL at this host',
    );
    assert.equal(all.stderr.match(new RegExp(WARNING, 'g'))?.length, 1, all.stderr);
  });

  it('web: no advice about the guessed host the printed URLs do not use; all (control): the advice', async () => {
    const password = randomBytes(18).toString('base64url');
    // --host 0.0.0.0 and no --public-host: the server guesses the host its raw URL names.
    const args = unmanagedWeb(password, ...CDN);
    args.splice(args.indexOf('--host'), 2, '--host', '0.0.0.0');
    args.splice(args.indexOf('--public-host'), 2);
    const GUESS = /guessed from this machine's interfaces/;
    const only = await banner(run([...args, '--advertise', 'web']));
    assert.doesNotMatch(only.stdout, GUESS);
    assert.doesNotMatch(only.stdout, /--public-host/);
    const all = await banner(run(args));
    assert.match(all.stdout, GUESS);
  });

  it('a bad value: one line naming the flag, exit 2', async () => {
    const r = await runLadder([
      'server',
      '--password',
      'x'.repeat(22),
      '--web-port',
      '0',
      '--advertise',
      'cdn',
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, 'ladder: --advertise: expected all or web, got "cdn"\n');
  });
});
