import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics, startMetricsServer } from './index.js';

test('metrics: bytes, connections, auth failures and time to auth are exported', async (t) => {
  const m = createMetrics({ processMetrics: false });
  m.addBytes('7', 100, 2000);
  m.connectionOpened();
  m.connectionOpened();
  m.connectionClosed({ status: 'OK', keyId: '7' });
  m.authFailed('ERR_CIPHER');
  m.authFailed('ERR_CIPHER');
  m.authenticated(0.002);
  m.setKeyStates({ active: 3, expired: 1 });
  const srv = await startMetricsServer(m, { port: 0 });
  t.after(() => srv.close());
  assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const res = await fetch(srv.url);
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.match(text, /ladder_data_bytes_total\{access_key="7",dir="up"\} 100/);
  assert.match(text, /ladder_data_bytes_total\{access_key="7",dir="down"\} 2000/);
  assert.match(text, /ladder_tcp_open_connections 1/);
  assert.match(text, /ladder_tcp_connections_closed_total\{status="OK"\} 1/);
  assert.match(text, /ladder_tcp_auth_failures_total\{status="ERR_CIPHER"\} 2/);
  assert.match(text, /ladder_time_to_auth_seconds_count 1/);
  assert.match(text, /ladder_access_keys\{state="expired"\} 1/);
  assert.equal((await fetch(srv.url.replace('/metrics', '/other'))).status, 404);
  m.removeKey('7');
  assert.doesNotMatch(await m.render(), /access_key="7"/);
});

test('metrics: fleet gauges appear only once a fleet node sets them, and follow each heartbeat', async () => {
  const m = createMetrics({ processMetrics: false });
  assert.doesNotMatch(await m.render(), /ladder_fleet/, 'a server that is not a fleet node exports none');
  m.setFleet(
    [
      { name: 'a', state: 'active', heartbeatAgeSeconds: 0.5, keysVersion: 4 },
      { name: 'b', state: 'down', heartbeatAgeSeconds: 9, keysVersion: 3 },
    ],
    4,
  );
  let text = await m.render();
  assert.match(text, /ladder_fleet_node_state\{node="b",state="down"\} 1/);
  assert.match(text, /ladder_fleet_node_heartbeat_age_seconds\{node="a"\} 0\.5/);
  assert.match(text, /ladder_fleet_node_keys_version\{node="b"\} 3/);
  assert.match(text, /ladder_fleet_keys_version 4/);
  m.setFleet([{ name: 'a', state: 'blocked', heartbeatAgeSeconds: 1, keysVersion: 5 }], 5);
  text = await m.render();
  assert.doesNotMatch(text, /node="b"/, 'a removed node leaves the gauges');
  assert.doesNotMatch(text, /state="active"/, 'the old state is gone');
  assert.match(text, /ladder_fleet_node_state\{node="a",state="blocked"\} 1/);
});

test('process metrics: the standard process_* and nodejs_* names behind one ladder_ prefix (not ladder_process_process_*)', async () => {
  const text = await createMetrics().render();
  assert.match(text, /^ladder_process_cpu_user_seconds_total /m);
  assert.match(text, /^ladder_nodejs_eventloop_lag_seconds /m);
  assert.doesNotMatch(text, /ladder_process_process_|ladder_process_nodejs_/);
});
