/**
 * answer-watch's Watch for a tunnel whose connect the addon still runs (NativeAnswer.connecting):
 * the no-answer wait is not judged while connecting (the server has not had the request), a close
 * before the connect finished is quiet (the dial failure says why), and once the dialer closed
 * (client shutdown) a wait still connecting is not armed again.
 */
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AnswerWatchDialer } from '../../src/client/answer-watch.js';
import { ManualClock } from '../../src/shared/clock.js';
import { createLogger } from '../../src/shared/logger.js';
import type { Dialer } from '../../src/transport/dialer.js';
import type { NativeAnswer } from '../../src/transport/native-dial.js';

function setup(): {
  dialer: AnswerWatchDialer;
  clock: ManualClock;
  told: () => string[];
  armed: () => number;
} {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const clock = new ManualClock();
  let armed = 0;
  const set = clock.setTimeout.bind(clock);
  clock.setTimeout = (fn, ms) => (armed++, set(fn, ms));
  const inner = { dial: () => Promise.reject(new Error('not used')) } as unknown as Dialer;
  const log = createLogger({ level: 'info', destination: out });
  const dialer = new AnswerWatchDialer(inner, { log, clock, noAnswerMs: 100, sharedTimer: false });
  const told = (): string[] =>
    text
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => String((JSON.parse(l) as { msg: unknown }).msg));
  return { dialer, clock, told, armed: () => armed };
}

const dest = () => ({ type: 'ipv4' as const, host: '127.0.0.1', port: 80 });

function socket(): {
  destroyed: boolean;
  writableEnded: boolean;
  connecting: boolean;
  answer: () => NativeAnswer;
  dest: typeof dest;
} {
  const s: ReturnType<typeof socket> = {
    destroyed: false,
    writableEnded: false,
    connecting: true,
    answer: () => ({ answered: false, bytesIn: 0, failed: false, connecting: s.connecting }),
    dest,
  };
  return s;
}

test('a connect that runs long: nothing told until it finished, then the no-answer wait', async () => {
  const { dialer, clock, told } = setup();
  const s = socket();
  dialer.leanWatch(s);
  clock.advance(1000);
  assert.deepEqual(told(), []);
  s.connecting = false;
  clock.advance(100);
  assert.equal(told().length, 1);
  assert.match(told()[0]!, /^no answer from the server in 0\.1 s/);
});

test('a close before the connect finished (it failed) is quiet', async () => {
  const { dialer, clock, told } = setup();
  const s = socket();
  const w = dialer.leanWatch(s);
  clock.advance(3000);
  s.destroyed = true;
  w.closed();
  clock.advance(1000);
  assert.deepEqual(told(), []);
});

test('the dialer closed: a wait still connecting is not armed again', async () => {
  const { dialer, clock, armed } = setup();
  dialer.leanWatch(socket());
  clock.advance(350);
  assert.ok(armed() >= 4, 'armed again while connecting');
  dialer.close();
  clock.advance(100);
  const after = armed();
  clock.advance(1000);
  assert.equal(armed(), after);
});
