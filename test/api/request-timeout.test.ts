// A request must arrive within the API's request timeout, headers and body, on the management
// API and on the --dynamic-listen app alike: a client that sends headers and then a body byte now
// and then is cut off, with or without the secret prefix. Fastify's default was no limit at all
// (it sets Node's requestTimeout to 0), so such a client held its connection, and a file
// descriptor of the process the data plane shares, for as long as it liked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { API_REQUEST_TIMEOUT_MS, buildApi, buildDynamicApp } from '../../src/api/app.js';
import { KeyEnforcer, openStore, parseStoreLocation } from '../../src/store/index.js';
import { RecordingControl, tempDir } from './helpers.js';

/**
 * Send `head` and then one body byte every 200 ms (never the whole body); how long until the
 * server closed the connection, or undefined when it was still open after `giveUpMs`.
 */
function trickle(port: number, head: string, giveUpMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const started = Date.now();
    const s = net.connect(port, '127.0.0.1', () => s.write(head));
    s.on('error', () => {});
    s.resume();
    const drip = setInterval(() => s.writable && s.write('x'), 200);
    const done = (v: number | undefined): void => {
      clearInterval(drip);
      clearTimeout(giveUp);
      s.destroy();
      resolve(v);
    };
    const giveUp = setTimeout(() => done(undefined), giveUpMs);
    s.once('close', () => done(Date.now() - started));
  });
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as net.AddressInfo).port;
}

const slowPost = (path: string): string =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`;

test('a request whose body trickles in is cut off at the request timeout (API and dynamic app)', async (t) => {
  const store = await openStore(parseStoreLocation(undefined, tempDir(t)));
  const control = new RecordingControl();
  const enforcer = new KeyEnforcer({ store, control });
  const api = await buildApi({ store, control, enforcer, requestTimeoutMs: 1000 });
  const dyn = await buildDynamicApp({ store, control, enforcer, requestTimeoutMs: 1000 });
  t.after(async () => {
    await api.close();
    await dyn.close();
    await store.close();
  });
  const [apiPort, dynPort] = [await listen(api), await listen(dyn)];
  const prefix = (await store.getSettings()).apiPrefix;
  const cases: Array<[string, number, string]> = [
    ['API, wrong prefix', apiPort, '/nope/access-keys'],
    ['API, under the prefix', apiPort, `/${prefix}/access-keys`],
    ['dynamic app', dynPort, '/access/token/report'],
  ];
  const closedAfter = await Promise.all(cases.map(([, port, path]) => trickle(port, slowPost(path), 6000)));
  cases.forEach(([name], i) => {
    const ms = closedAfter[i];
    assert.ok(ms !== undefined, `${name}: still open after 6 s of trickling`);
    assert.ok(ms >= 900, `${name}: closed after ${ms} ms, before the timeout`);
  });
  assert.equal(API_REQUEST_TIMEOUT_MS, 60_000);
  const defaults = await buildApi({ store, control, enforcer });
  t.after(() => defaults.close());
  assert.equal(defaults.server.requestTimeout, API_REQUEST_TIMEOUT_MS, 'the default applies');
});
