/** A Ladder client (SOCKS5 on a free loopback port) over `key`, logging at `level` into a string. */
import { PassThrough } from 'node:stream';
import { startClient } from '../../src/client/index.js';
import { endpointFromKey } from '../../src/client/key.js';
import { createLogger } from '../../src/shared/logger.js';

export async function clientLogging(
  key: string,
  level: 'debug' | 'info',
  extra: Partial<Parameters<typeof startClient>[0]> = {},
): Promise<{ client: Awaited<ReturnType<typeof startClient>>; text: () => string }> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const client = await startClient({
    keys: [endpointFromKey(key, 'local')],
    socks: { host: '127.0.0.1', port: 0 },
    log: createLogger({ level, destination: out }),
    ...extra,
  });
  return { client, text: () => text };
}
