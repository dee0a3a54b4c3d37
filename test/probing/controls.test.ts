/**
 * Controls for the probing suite: the same prober and the same judge() used against Ladder must
 * (a) pass a deliberately correct in-test server (positive control: the assertions are not too
 * strict) and (b) catch each of several deliberately naive servers (negative controls: the
 * assertions can fail). Each naive server reproduces a real, historically probed behaviour
 * (docs/glossary.md C7, D6).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import type { Policy } from './prober.js';
import { judge, randomProbes, runProbes, summarise } from './prober.js';

const IDLE_MS = 1000;
const POLICY: Policy = { minCloseMs: IDLE_MS - 50, maxCloseMs: IDLE_MS + 1500, maxBucketSpreadMs: 250 };
const HALF_CLOSE_POLICY: Policy = { minCloseMs: 0, maxCloseMs: 500, maxBucketSpreadMs: 150 };

type Behaviour = (s: net.Socket) => void;

const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

async function naive(behaviour: Behaviour): Promise<number> {
  const srv = net.createServer(
    { allowHalfOpen: true, pauseOnConnect: behaviour === neverReadsThenCloses },
    (s) => {
      s.on('error', () => undefined);
      behaviour(s);
    },
  );
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as AddressInfo).port;
}

/** Drain everything; FIN when the peer FINs; otherwise FIN at the idle timeout. */
const uniform: Behaviour = (s) => {
  const t = setTimeout(() => s.end(), IDLE_MS);
  s.resume();
  s.on('end', () => {
    clearTimeout(t);
    s.end();
  });
};

const closesImmediately: Behaviour = (s) => {
  s.once('data', () => s.destroy());
};

const resetsOnData: Behaviour = (s) => {
  s.once('data', () => s.resetAndDestroy());
};

const answersWithData: Behaviour = (s) => {
  s.once('data', () => s.write(randomBytes(16)));
  uniform(s);
};

/** shadowsocks-libev <= 3.2.5 with a 16-byte salt: <= 50 bytes wait, >= 51 bytes RST. */
const libev325: Behaviour = (s) => {
  let n = 0;
  const t = setTimeout(() => s.end(), IDLE_MS);
  s.on('data', (d: Buffer) => {
    n += d.length;
    if (n >= 51) {
      clearTimeout(t);
      s.resetAndDestroy();
    }
  });
  s.on('end', () => {
    clearTimeout(t);
    s.end();
  });
};

/** Reads everything and FINs, but its timeout grows with the bytes it read. */
const lengthDependentTimeout: Behaviour = (s) => {
  let n = 0;
  let t = setTimeout(() => s.end(), IDLE_MS);
  s.on('data', (d: Buffer) => {
    n += d.length;
    clearTimeout(t);
    t = setTimeout(() => s.end(), IDLE_MS + 8 * n);
  });
  s.on('end', () => {
    clearTimeout(t);
    s.end();
  });
};

/** Never reads, closes at its timeout: the bytes left in the kernel's receive buffer turn the FIN into an RST. */
function neverReadsThenCloses(s: net.Socket): void {
  setTimeout(() => s.destroy(), IDLE_MS);
}

/** Ignores the prober's FIN and waits for its own timeout. */
const ignoresFin: Behaviour = (s) => {
  const t = setTimeout(() => s.end(), IDLE_MS);
  s.resume();
  s.on('close', () => clearTimeout(t));
};

const probes = randomProbes(randomBytes);

async function run(behaviour: Behaviour, halfClose: boolean): Promise<ReturnType<typeof judge>> {
  const port = await naive(behaviour);
  const results = await runProbes(port, probes, { giveUpMs: IDLE_MS + 3000, halfClose, concurrency: 34 });
  const j = judge(results, halfClose ? HALF_CLOSE_POLICY : POLICY);
  console.log(summarise(`${behaviour.name}${halfClose ? ' (half-close)' : ''}`, results, j));
  return j;
}

describe('probing-suite controls', { concurrency: 2 }, () => {
  test('positive control: a uniform drain-then-FIN server passes', async () => {
    const j = await run(uniform, false);
    assert.deepEqual(j.violations, []);
  });

  test('positive control: a uniform server answers a half-close with a prompt FIN', async () => {
    const j = await run(uniform, true);
    assert.deepEqual(j.violations, []);
  });

  test('negative control: closing immediately on bad input is caught (early close)', async () => {
    const j = await run(closesImmediately, false);
    assert.ok(
      j.violations.some((v) => v.includes('closed early')),
      j.violations.slice(0, 3).join('\n'),
    );
  });

  test('negative control: RST on bad input is caught', async () => {
    const j = await run(resetsOnData, false);
    assert.ok(
      j.violations.some((v) => v.includes('reaction RST')),
      j.violations.slice(0, 3).join('\n'),
    );
  });

  test('negative control: answering with data is caught', async () => {
    const j = await run(answersWithData, false);
    assert.ok(j.violations.some((v) => v.includes('(DATA)')));
  });

  test('negative control: the libev <= 3.2.5 length threshold (51 bytes -> RST) is caught', async () => {
    const j = await run(libev325, false);
    const rst = j.violations.filter((v) => v.includes('reaction RST'));
    assert.equal(rst.length, 51, 'lengths 51..100 and 221 get RST');
    assert.ok(rst.every((v) => Number(/len (\d+)/.exec(v)![1]) >= 51));
  });

  test('negative control: a close time that grows with probe length is caught', async () => {
    const j = await run(lengthDependentTimeout, false);
    assert.ok(
      j.violations.some((v) => v.includes('depends on probe length')),
      j.violations.join('\n'),
    );
  });

  test('negative control: closing with unread data in the receive buffer (RST) is caught', async () => {
    const j = await run(neverReadsThenCloses, false);
    assert.ok(
      j.violations.some((v) => v.includes('reaction RST')),
      j.violations.slice(0, 3).join('\n'),
    );
  });

  test('negative control: ignoring the prober FIN until the timeout is caught', async () => {
    const j = await run(ignoresFin, true);
    assert.ok(
      j.violations.some((v) => v.includes('closed late')),
      j.violations.slice(0, 3).join('\n'),
    );
  });
});
